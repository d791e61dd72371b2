"""Configuration of the ML core: a frozen dataclass, built from the environment or passed in.

Django builds one from its settings (backend.core.mlops_config); the DVC stages and scripts build
one from the environment. Nothing in mlops reads django.conf.

`library_env` is the one list of variables MLflow and Ultralytics must be started with;
`apply_library_env` puts them into the process (settings, stages, trainers and benches call it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

# Set whatever the process was started with: MLflow must never unpickle, and the store it talks
# to is ours. The other library variables yield to a value the process already has.
_ALWAYS_SET = frozenset({"MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"})


def ultralytics_dir(var_dir: Path | str) -> Path:
    """Where Ultralytics keeps its settings: under var/, not ~/.config."""
    return Path(var_dir) / "ultralytics"


def default_artifact_root(tracking_uri: str, var_dir: Path | str) -> str:
    """Where new experiments keep their artifacts when MLFLOW_ARTIFACT_ROOT is not set.

    A tracking server (http/https) chooses itself: with `--serve-artifacts` its clients upload and
    download through it (mlflow-artifacts:/...), wherever it keeps them (S3). An embedded store
    keeps them under var/. Empty means "the server's default".
    """
    return "" if is_tracking_server(tracking_uri) else str(Path(var_dir) / "mlartifacts")


def is_tracking_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def library_env(
    var_dir: Path | str,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    *,
    s3_endpoint_url: str = "",
) -> dict[str, str]:
    """The variables MLflow and Ultralytics read: no unpickling, downloads or progress bars; state under var_dir.

    `s3_endpoint_url` (an S3-compatible store; empty: AWS) reaches MLflow as MLFLOW_S3_ENDPOINT_URL,
    for the clients that read s3:// artifact URIs themselves rather than through a tracking server.
    """
    env = {
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "YOLO_CONFIG_DIR": str(ultralytics_dir(var_dir)),
        "YOLO_AUTOINSTALL": "false",
        "YOLO_OFFLINE": "true",
    }
    if s3_endpoint_url:
        env["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint_url
    if tracking_uri is not None:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    if registry_uri is not None:
        env["MLFLOW_REGISTRY_URI"] = registry_uri
    return env


def apply_library_env(env: Mapping[str, str], *, override: bool = False) -> None:
    """Put `env` into os.environ: the safety switch and URIs always, the rest where unset (all with override)."""
    for key, value in env.items():
        if override or key in _ALWAYS_SET:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)


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
    # Where new experiments keep their artifacts; empty: the tracking server's default (default_artifact_root).
    artifact_root: str
    experiment: str = "modelyard"
    # An S3-compatible endpoint for s3:// artifact URIs (MLFLOW_S3_ENDPOINT_URL); empty: AWS.
    s3_endpoint_url: str = ""
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
            artifact_root=os.environ.get("MLFLOW_ARTIFACT_ROOT") or default_artifact_root(tracking, var_dir),
            experiment=os.environ.get("MLFLOW_EXPERIMENT") or "modelyard",
            s3_endpoint_url=os.environ.get("S3_ENDPOINT_URL") or "",
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
        return ultralytics_dir(self.var_dir)

    def apply_process_env(self) -> None:
        """Point the libraries that read the environment at our directories.

        Ultralytics writes settings to ~/.config and runs to ./runs unless told; MLflow must
        never unpickle. Called by every entry point that trains or registers.
        """
        apply_library_env(
            library_env(self.var_dir, self.tracking_uri, self.registry_uri, s3_endpoint_url=self.s3_endpoint_url)
        )
