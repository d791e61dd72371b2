"""A pretrained Ultralytics detector as a model's first version: no training, seconds instead of minutes.

`register_pretrained_detector` fetches Ultralytics' released weights (`yolo26n.pt`, trained on
COCO's 80 classes) with Ultralytics' own download code, exports them to ONNX, smoke-tests the export
the way promotion will, and registers the version with its lineage in an MLflow run of its own.
The network part is `download_asset` alone: it answers within seconds (a probe with a hard deadline,
then one download without long retries) or raises PretrainedUnavailable saying why, so a caller can
train a model instead.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from mlops.data.network import probe_http
from mlops.exceptions import MlopsError
from mlops.inference.detector import OnnxDetector
from mlops.inference.loader import smoke_test
from mlops.registry.entities import ArtifactRole, ModelKind, ModelVersionInfo
from mlops.registry.mlflow_store import MlflowModelRegistry
from mlops.training.tracking import scratch_dir, training_run
from mlops.training.yolo import DOWNLOAD_PROBE_TIMEOUT, WEIGHTS_URL, export_onnx

logger = logging.getLogger(__name__)

COCO_DETECTOR_WEIGHTS = "yolo26n.pt"
PRETRAINED_IMGSZ = 640  # what Ultralytics trained the released weights at
DOWNLOAD_RETRIES = 1  # Ultralytics' default (3, waiting 5, 10, 20 s) would hold `make run` for a minute


class PretrainedUnavailable(MlopsError):
    """The released weights cannot be had here (offline, blocked, a broken download)."""

    code = "pretrained_unavailable"
    status = 503


@dataclass(frozen=True)
class PretrainedDetector:
    """A released detector ready to register: its weights, their ONNX export and what serving needs."""

    weights: Path
    onnx: Path
    class_names: list[str]
    imgsz: int
    smoke_detail: str


def download_asset(asset: str, weights_dir: Path, *, timeout: float = DOWNLOAD_PROBE_TIMEOUT) -> Path:
    """The released `asset` (e.g. yolo26n.pt) in `weights_dir`, downloaded from Ultralytics' releases
    when not there yet. Raises PretrainedUnavailable within about `timeout` seconds when offline."""
    cached = Path(weights_dir) / asset
    if cached.is_file():
        return cached
    problem = probe_http(WEIGHTS_URL, timeout=timeout)
    if problem is not None:
        raise PretrainedUnavailable(f"{WEIGHTS_URL} does not answer: {problem}", details={"asset": asset})
    from ultralytics.utils.downloads import attempt_download_asset

    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        downloaded = Path(attempt_download_asset(str(cached), retry=DOWNLOAD_RETRIES))
    except Exception as exc:  # whatever the download raises means: not available here
        raise PretrainedUnavailable(f"downloading {asset} failed: {exc}", details={"asset": asset}) from exc
    if not downloaded.is_file():
        raise PretrainedUnavailable(f"Ultralytics' releases have no {asset}", details={"asset": asset})
    return downloaded


def prepare_pretrained_detector(asset: str, workdir: Path, weights_dir: Path) -> PretrainedDetector:
    """Fetch `asset`, export it to ONNX in `workdir` and smoke-test the export (MlopsError if it fails)."""
    fetched = download_asset(asset, weights_dir)
    weights = Path(workdir) / Path(asset).name
    shutil.copyfile(fetched, weights)  # Ultralytics writes the export beside the weights: keep the cache clean
    onnx = export_onnx(weights, PRETRAINED_IMGSZ)
    detector = OnnxDetector(onnx)
    metadata = {"class_names": list(detector.class_names), "imgsz": detector.imgsz}
    result = smoke_test(detector, metadata)
    if not result.ok:
        raise MlopsError(f"the ONNX export of {asset} failed its smoke test: {result.detail}", code="smoke_test_failed")
    return PretrainedDetector(weights, onnx, metadata["class_names"], detector.imgsz, result.detail)


def register_pretrained_detector(
    registry: MlflowModelRegistry, model_name: str, *, asset: str = COCO_DETECTOR_WEIGHTS
) -> ModelVersionInfo:
    """Register Ultralytics' released `asset` as a new version of `model_name` (detection), with lineage.

    Raises PretrainedUnavailable when the weights cannot be had (nothing is registered then).
    """
    started = time.monotonic()
    registry.config.apply_process_env()
    weights_dir = registry.config.ultralytics_dir / "weights"
    workdir = scratch_dir(registry.config, "pretrained-")
    try:
        built = prepare_pretrained_detector(asset, workdir, weights_dir)
        weights_sha = hashlib.sha256(built.weights.read_bytes()).hexdigest()
        source = f"ultralytics release {asset}"
        params = {"weights": asset, "imgsz": built.imgsz, "pretrained": "coco"}
        with training_run(
            registry,
            kind=str(ModelKind.DETECTION),
            run_name=f"{model_name} from {asset}",
            params=params,
            data_version=f"coco:{asset}",
            config_hash=weights_sha[:16],
            tags={"modelyard.pretrained": asset},
        ) as run:
            version = registry.register_version(
                model_name,
                ModelKind.DETECTION,
                {ArtifactRole.WEIGHTS: built.weights, ArtifactRole.ONNX: built.onnx},
                metadata={
                    "class_names": built.class_names,
                    "imgsz": built.imgsz,
                    "architecture": Path(asset).stem,
                    "task": "detect",
                    "pretrained": asset,
                    "data_version": f"coco:{asset}",
                },
                lineage=run.lineage,
                run_id=run.run_id,
                description=f"{Path(asset).stem} pretrained on COCO ({len(built.class_names)} classes), {source}",
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    logger.info(
        "training.pretrained_registered model=%s version=%s weights=%s seconds=%.1f",
        model_name,
        version.version,
        asset,
        time.monotonic() - started,
    )
    return version
