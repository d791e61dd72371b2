"""Configuration of the ML core: a frozen dataclass, built from the environment or passed in.

Django builds one from its settings (backend.core.mlops_config); the DVC stages and scripts build
one from the environment. Nothing in mlops reads django.conf.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class MlopsConfig:
    """Where the ML core keeps its state and the limits it enforces."""

    var_dir: Path
    tracking_uri: str
    registry_uri: str
    artifact_root: str
    experiment: str = "modelyard"
    # Image decoding caps: Pillow's own limit lets a 10 KB PNG cost 400 MB.
    max_image_pixels: int = 40_000_000
    max_image_side: int = 12_000
    model_cache_dir: Path = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.model_cache_dir is None:
            object.__setattr__(self, "model_cache_dir", Path(self.var_dir) / "model-cache")

    @classmethod
    def from_env(cls, base_dir: Path | None = None) -> MlopsConfig:
        base = Path(base_dir or Path.cwd())
        var_dir = Path(os.environ.get("VAR_DIR") or base / "var").resolve()
        tracking = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{var_dir / 'mlflow.db'}"
        return cls(
            var_dir=var_dir,
            tracking_uri=tracking,
            registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or tracking,
            artifact_root=os.environ.get("MLFLOW_ARTIFACT_ROOT") or str(var_dir / "mlartifacts"),
            experiment=os.environ.get("MLFLOW_EXPERIMENT") or "modelyard",
            max_image_pixels=_env_int("MAX_IMAGE_PIXELS", 40_000_000),
            max_image_side=_env_int("MAX_IMAGE_SIDE", 12_000),
        )

    def with_overrides(self, **changes) -> MlopsConfig:
        return replace(self, **changes)

    def version_cache_dir(self, model_name: str, version: int) -> Path:
        """Where a version's artifacts are fetched to (and sha256-verified) before a process loads them."""
        return Path(self.model_cache_dir) / model_name / str(version)

    @property
    def ultralytics_dir(self) -> Path:
        return Path(self.var_dir) / "ultralytics"

    def apply_process_env(self) -> None:
        """Point the libraries that read the environment at our directories.

        Ultralytics writes settings to ~/.config and runs to ./runs unless told; MLflow must
        never unpickle. Called by every entry point that trains or registers.
        """
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("YOLO_CONFIG_DIR", str(self.ultralytics_dir))
        os.environ.setdefault("YOLO_AUTOINSTALL", "false")
        os.environ.setdefault("YOLO_OFFLINE", "true")
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        os.environ["MLFLOW_REGISTRY_URI"] = self.registry_uri
