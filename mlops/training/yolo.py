"""Train, evaluate, export and register an Ultralytics YOLO detector, and the steps every YOLO
trainer shares (mlops.training.yolo_classify uses them for classifiers).

`train_detector` is the one entry point: it trains on a prepared dataset (mlops.data.prepare)
inside one MLflow run, evaluates the exported ONNX model on the test split, saves the drift
reference table, registers the version and compares it with production. Progress goes to the
caller's `on_epoch(epoch, epochs, metrics)`; `should_stop()` is polled after every batch and
stops training through Ultralytics' own `trainer.stop`.

Shared by task: `build_model` (architecture, pretrained weights or from scratch), `fit_yolo`
(training with the progress and cancel callbacks), `export_onnx`, `log_training_files`,
`register_build` (registration, comparison with production, the outcome).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.config import MlopsConfig
from mlops.data.layout import is_image
from mlops.data.network import probe_http
from mlops.data.prepare import PreparedDataset, load_prepared
from mlops.exceptions import InvalidInput, TrainingCancelled
from mlops.registry.entities import ArtifactRole, ModelKind, ModelVersionInfo
from mlops.registry.mlflow_store import MlflowModelRegistry
from mlops.training.compare import NotComparable, compare_with_production, record_comparison
from mlops.training.params import DetectorParams, YoloParams
from mlops.training.results import PhaseTimer, TrainingOutcome
from mlops.training.tracking import (
    TrainingRun,
    metric_key,
    scratch_dir,
    training_run,
    ultralytics_mlflow_scope,
)

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, int, dict], None]
StopCheck = Callable[[], bool]

PRIMARY_METRIC = "mAP50-95"
WEIGHTS_URL = "https://github.com"  # Ultralytics' release assets
TORCHVISION_WEIGHTS_URL = "https://download.pytorch.org"  # torchvision backbones' pretrained weights
DOWNLOAD_PROBE_TIMEOUT = 3.0
REFERENCE_FILE = "reference.parquet"
# The model-output columns of the drift reference table (image descriptors come first, class counts last).
OUTPUT_COLUMNS = ("n_boxes", "mean_confidence", "max_confidence", "box_area_share")
CLASS_COUNT_PREFIX = "count_"
_FRIENDLY = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
}


@dataclass(frozen=True)
class FitResult:
    best: Path
    last: Path
    save_dir: Path
    epochs_run: int
    best_epoch: int
    cancelled: bool
    history: tuple[dict, ...]
    ultralytics_logged: bool  # Ultralytics' MLflow callback logged epochs and files itself


def train_detector(
    config: MlopsConfig,
    params: DetectorParams | Mapping[str, Any] | None,
    dataset_dir: Path | str,
    *,
    model_name: str,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    description: str = "",
    params_file: Path | str | None = None,
) -> TrainingOutcome:
    """Train a detector on the prepared dataset in `dataset_dir` and register it as a new version.

    Raises TrainingCancelled (after the MLflow run is marked KILLED) when `should_stop()` turned
    true; any other failure marks the run FAILED and propagates.
    """
    started = time.monotonic()
    config.apply_process_env()
    params = DetectorParams.resolve(params, params_file)
    data = load_prepared(dataset_dir, kind="detection")
    registry = MlflowModelRegistry(config)
    workdir = scratch_dir(config, f"{model_name}-")
    timer = PhaseTimer()
    try:
        with training_run(
            registry,
            kind=ModelKind.DETECTION,
            run_name=f"{model_name}-{params.architecture}",
            params=flat_params(params),
            data_version=data.data_version,
            config_hash=params.config_hash(),
            tags={"modelyard.model_name": model_name},
        ) as run:
            with timer.phase("fit"):
                fit = fit_detector(
                    params,
                    data,
                    workdir,
                    experiment=config.experiment,
                    run=run,
                    on_epoch=on_epoch,
                    should_stop=should_stop,
                )
            if fit.cancelled:
                raise TrainingCancelled(
                    f"training of {model_name} was cancelled after {fit.epochs_run} epochs",
                    details={"run_id": run.run_id, "epochs_run": fit.epochs_run},
                )
            built = finish_detector(run, fit, params, data, workdir, timer=timer)
        return register_detector(
            registry,
            run,
            built,
            params,
            data,
            model_name=model_name,
            description=description,
            started=started,
            timer=timer,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class YoloBuild:
    """A trained YOLO model's files (weights, ONNX export, drift reference) and its test metrics,
    ready to register."""

    weights: Path
    onnx: Path
    reference: Path
    metrics: dict[str, float]
    epochs_run: int
    best_epoch: int


def finish_detector(
    run: TrainingRun,
    fit: FitResult,
    params: DetectorParams,
    data: PreparedDataset,
    workdir: Path,
    *,
    timer: PhaseTimer | None = None,
) -> YoloBuild:
    """Export ONNX, evaluate it on the test split, save the drift reference; log all to `run`."""
    timer = timer or PhaseTimer()
    with timer.phase("export"):
        onnx = export_onnx(fit.best, params.imgsz)
    with timer.phase("evaluate"):
        metrics = evaluate_detector(onnx, data, imgsz=params.imgsz, workdir=workdir)
    with timer.phase("reference"):
        reference = save_reference(
            onnx, data, Path(workdir) / REFERENCE_FILE, imgsz=params.imgsz, conf=params.reference_conf
        )
    return logged_build(run, fit, onnx, metrics, reference, data, timer=timer)


def logged_build(
    run: TrainingRun,
    fit: FitResult,
    onnx: Path,
    metrics: dict[str, float],
    reference: Path,
    data: PreparedDataset,
    *,
    timer: PhaseTimer,
) -> YoloBuild:
    """Log a finished build's test metrics and files to `run`, and return it."""
    with timer.phase("log"):
        run.log_metrics({f"test/{key}": value for key, value in metrics.items()})
        run.log_metrics({"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch})
        log_training_files(run, fit, reference, data)
    return YoloBuild(fit.best, onnx, reference, metrics, fit.epochs_run, fit.best_epoch)


def register_detector(
    registry: MlflowModelRegistry,
    run: TrainingRun,
    built: YoloBuild,
    params: DetectorParams,
    data: PreparedDataset,
    *,
    model_name: str,
    description: str,
    started: float,
    timer: PhaseTimer | None = None,
) -> TrainingOutcome:
    """Register the build as a new version of `model_name`, compare it with production."""
    workdir = built.onnx.parent
    return register_build(
        registry,
        run,
        built,
        params,
        kind=ModelKind.DETECTION,
        task="detect",
        model_name=model_name,
        metadata={"reference_conf": params.reference_conf},
        data=data,
        primary_metric=PRIMARY_METRIC,
        score_baseline=lambda baseline: _score_baseline(registry, baseline, data, workdir),
        description=description,
        started=started,
        timer=timer,
    )


def register_build(
    registry: MlflowModelRegistry,
    run: TrainingRun,
    built: YoloBuild,
    params: YoloParams,
    *,
    kind: ModelKind,
    task: str,
    model_name: str,
    metadata: dict,
    data: PreparedDataset,
    primary_metric: str,
    score_baseline: Callable[[ModelVersionInfo], dict[str, float]],
    description: str,
    started: float,
    timer: PhaseTimer | None = None,
) -> TrainingOutcome:
    """Register a build's files (the data manifest and validation report added) as a new version of
    `model_name` with the run's lineage and the metadata serving needs (`metadata` adds the kind's own),
    compare it with production on the same test split, and say so.
    """
    timer = timer or PhaseTimer()
    metrics = built.metrics
    metadata = {
        "class_names": list(data.class_names),
        "imgsz": params.imgsz,
        "architecture": params.architecture,
        "task": task,
        "data_version": data.data_version,
        **metadata,
    }
    files = {
        ArtifactRole.WEIGHTS: built.weights,
        ArtifactRole.ONNX: built.onnx,
        ArtifactRole.REFERENCE: built.reference,
        ArtifactRole.DATA_MANIFEST: data.manifest_path,
    }
    if data.validation_report is not None:
        files[ArtifactRole.VALIDATION_REPORT] = data.validation_report
    with timer.phase("register"):
        version = registry.register_version(
            model_name,
            kind,
            files,
            metrics=metrics,
            metadata=metadata,
            lineage=run.lineage,
            run_id=run.run_id,
            description=description,
        )
    with timer.phase("compare"):
        comparison = compare_with_production(
            registry,
            version,
            metrics,
            primary_metric=primary_metric,
            data_version=data.data_version,
            score_baseline=score_baseline,
        )
        record_comparison(registry, comparison, model_name, run.run_id)
    log_timings(run, timer)
    return TrainingOutcome(
        version=version,
        metrics=metrics,
        comparison=comparison,
        run_id=run.run_id,
        duration_s=time.monotonic() - started,
        epochs_run=built.epochs_run,
        best_epoch=built.best_epoch,
        timings=dict(timer.timings),
    )


def log_timings(run: TrainingRun, timer: PhaseTimer) -> None:
    run.log_metrics({f"time/{phase}_s": seconds for phase, seconds in timer.timings.items()})


# -- training ---------------------------------------------------------------------------------


def fit_detector(
    params: DetectorParams,
    data: PreparedDataset,
    workdir: Path,
    *,
    experiment: str,
    run: TrainingRun | None = None,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    on_fit_epoch: Callable[[Any], None] | None = None,
) -> FitResult:
    """Ultralytics detection training with our callbacks; returns where the best weights are."""
    return fit_yolo(
        params,
        data,
        workdir,
        task="detect",
        metric_names=_FRIENDLY,
        experiment=experiment,
        run=run,
        on_epoch=on_epoch,
        should_stop=should_stop,
        on_fit_epoch=on_fit_epoch,
    )


def fit_yolo(
    params: YoloParams,
    data: PreparedDataset,
    workdir: Path,
    *,
    task: str,
    metric_names: Mapping[str, str],
    experiment: str,
    run: TrainingRun | None = None,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    on_fit_epoch: Callable[[Any], None] | None = None,
) -> FitResult:
    """Train an Ultralytics model of `task` ("detect", "classify") on `data` with our callbacks.

    Each epoch's metrics go to `run` (when Ultralytics' own MLflow callback is off) and to
    `on_epoch` under the names `metric_names` gives them; `should_stop()` is polled every batch.
    """
    model = build_model(params, Path(workdir) / "weights")
    if model.task != task:
        raise InvalidInput(f"{params.model} is a {model.task} model, not a {task} one", code="bad_params")
    progress = _Progress(run, on_epoch, should_stop, on_fit_epoch, metric_names)
    model.add_callback("on_train_epoch_end", progress.on_train_epoch_end)
    model.add_callback("on_fit_epoch_end", progress.on_fit_epoch_end)
    model.add_callback("on_train_batch_end", progress.on_train_batch_end)
    logger.info(
        "training.yolo_started task=%s model=%s data=%s epochs=%s", task, params.model, data.path, params.epochs
    )
    with ultralytics_mlflow_scope(experiment):
        model.train(
            data=data.ultralytics_data,
            project=str(workdir),
            name="train",
            exist_ok=True,
            verbose=False,
            **params.ultralytics_args(),
        )
    trainer = model.trainer
    best, last = Path(trainer.best), Path(trainer.last)
    logger.info(
        "training.yolo_finished task=%s epochs=%s best_epoch=%s cancelled=%s",
        task,
        progress.epochs_run,
        progress.best_epoch,
        progress.cancelled,
    )
    return FitResult(
        best=best if best.exists() else last,
        last=last,
        save_dir=Path(trainer.save_dir),
        epochs_run=progress.epochs_run,
        best_epoch=progress.best_epoch,
        cancelled=progress.cancelled,
        history=tuple(progress.history),
        ultralytics_logged=bool(getattr(trainer, "_mlflow_active", False)),
    )


class _Progress:
    """Ultralytics callbacks: report each epoch, poll for cancellation after every batch.

    `on_fit_epoch_end` also fires once after training for the final evaluation of best.pt; an
    epoch is only counted when `on_train_epoch_end` came before it.
    """

    def __init__(self, run, on_epoch, should_stop, on_fit_epoch, metric_names: Mapping[str, str]):
        self.run = run
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.on_fit_epoch = on_fit_epoch
        self.metric_names = dict(metric_names)
        self.cancelled = False
        self.epochs_run = 0
        self.best_epoch = 0
        self.best_fitness = float("-inf")
        self.history: list[dict] = []
        self._epoch_open = False

    def on_train_batch_end(self, trainer) -> None:
        if self.should_stop is not None and not self.cancelled and self.should_stop():
            logger.info("training.cancel_requested epoch=%s", trainer.epoch + 1)
            self.cancelled = True
        if self.cancelled:
            trainer.stop = True

    def on_train_epoch_end(self, trainer) -> None:
        self._epoch_open = True

    def on_fit_epoch_end(self, trainer) -> None:
        raw = {
            **trainer.label_loss_items(trainer.tloss, prefix="train"),
            **(trainer.metrics or {}),
            **(getattr(trainer, "lr", None) or {}),
        }
        if self.run is not None and not getattr(trainer, "_mlflow_active", False):
            # Ultralytics' MLflow callback is off (settings, or under pytest): log what it would.
            self.run.log_metrics(raw, step=trainer.epoch)
        if not self._epoch_open:
            return  # the final evaluation of best.pt, not an epoch
        self._epoch_open = False
        self.epochs_run = trainer.epoch + 1
        metrics = {self.metric_names.get(key, key): float(value) for key, value in raw.items() if _is_number(value)}
        fitness = float(trainer.fitness) if trainer.fitness is not None else float("-inf")
        if fitness > self.best_fitness:
            self.best_fitness, self.best_epoch = fitness, self.epochs_run
        metrics["fitness"] = fitness
        self.history.append({"epoch": self.epochs_run, **metrics})
        if self.on_fit_epoch is not None:
            self.on_fit_epoch(trainer)
        if self.on_epoch is not None:
            self.on_epoch(self.epochs_run, trainer.epochs, metrics)


def build_model(params: YoloParams, weights_dir: Path):
    """YOLO from the architecture yaml, with pretrained weights when given and obtainable.

    Whatever cannot be downloaded (an Ultralytics checkpoint, a torchvision backbone's ImageNet
    weights) is skipped within seconds with a warning, and that part trains from scratch.
    """
    from ultralytics import YOLO

    architecture = params.model
    pretrained = None
    if architecture.endswith(".pt") and not Path(architecture).is_file():
        # A checkpoint name: download it if possible, else the same architecture from scratch.
        found = pretrained_weights(architecture, weights_dir)
        pretrained = found
        architecture = str(found) if found else f"{Path(architecture).stem}.yaml"
    elif architecture.endswith(".pt"):
        pretrained = Path(architecture)
    model = YOLO(_buildable_yaml(architecture, Path(weights_dir)))
    if params.weights:
        weights = pretrained_weights(params.weights, weights_dir)
        if weights is not None:
            model = model.load(str(weights))
            pretrained = weights
            logger.info("training.pretrained_loaded weights=%s", weights)
    if pretrained is None:
        logger.info("training.from_scratch architecture=%s task=%s", Path(architecture).name, model.task)
    return model


def _buildable_yaml(architecture: str, weights_dir: Path) -> str:
    """`architecture`, or a copy of its yaml without torchvision pretrained weights that cannot be had.

    A yaml such as yolo11-cls-resnet18.yaml builds a torchvision backbone with ImageNet weights,
    which torchvision downloads while the model is built; offline that would fail the training.
    """
    if Path(architecture).suffix not in (".yaml", ".yml"):
        return architecture
    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load(architecture)
    wanted = [
        layer
        for layer in [*cfg.get("backbone", []), *cfg.get("head", [])]
        if layer[2] == "TorchVision" and isinstance(layer[3], list) and len(layer[3]) > 2 and layer[3][2]
    ]
    missing = [layer for layer in wanted if not _torchvision_weights_cached(layer[3][1], layer[3][2])]
    if not missing:
        return architecture
    problem = probe_http(TORCHVISION_WEIGHTS_URL, timeout=DOWNLOAD_PROBE_TIMEOUT)
    if problem is None:
        return architecture  # torchvision downloads them while the model is built
    for layer in missing:
        logger.warning(
            "training.pretrained_unavailable weights=torchvision:%s/%s reason=%r: backbone from scratch",
            layer[3][1],
            layer[3][2],
            problem,
        )
        layer[3][2] = None
    import yaml

    target = weights_dir / Path(architecture).name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if k not in ("yaml_file", "scale")}))
    return str(target)


def _torchvision_weights_cached(model_name: str, weights: str) -> bool:
    """Are torchvision's `weights` of `model_name` in the local torch hub cache already?"""
    import torch
    import torchvision

    try:
        url = getattr(torchvision.models.get_model_weights(model_name), str(weights)).url
    except (AttributeError, KeyError, ValueError):
        return False
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file()


def pretrained_weights(spec: str, weights_dir: Path) -> Path | None:
    """A local weights file for `spec` (a path, or an Ultralytics asset name to download).

    Offline, the download is skipped within seconds with a warning (None: train from scratch);
    a path that does not exist is the caller's mistake and raises.
    """
    path = Path(spec)
    if path.is_file():
        return path
    if len(path.parts) > 1 or path.suffix != ".pt":
        raise InvalidInput(f"pretrained weights {spec!r} do not exist", code="weights_missing")
    cached = Path(weights_dir) / path.name
    if cached.is_file():
        return cached
    problem = probe_http(WEIGHTS_URL, timeout=DOWNLOAD_PROBE_TIMEOUT)
    if problem is not None:
        logger.warning("training.pretrained_unavailable weights=%s reason=%r: training from scratch", spec, problem)
        return None
    from ultralytics.utils.downloads import attempt_download_asset

    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        downloaded = Path(attempt_download_asset(str(cached)))
    except Exception as exc:  # noqa: BLE001  (any download failure means: train from scratch)
        logger.warning("training.pretrained_unavailable weights=%s reason=%r: training from scratch", spec, exc)
        return None
    return downloaded if downloaded.is_file() else None


# -- evaluation, export, reference ------------------------------------------------------------


def export_onnx(weights: Path, imgsz: int) -> Path:
    """Ultralytics' ONNX export of `weights` with a dynamic input (1x3xHxW).

    Serving then letterboxes each image to the smallest stride-aligned rectangle, as Ultralytics'
    own predict does: a 4:3 photo runs at 640x480, measured 0.71-0.77x the time of 640x640.
    """
    from ultralytics import YOLO

    exported = YOLO(str(weights)).export(format="onnx", imgsz=imgsz, dynamic=True, device="cpu", verbose=False)
    logger.info("training.onnx_exported path=%s", exported)
    return Path(exported)


def evaluate_detector(
    model_path: Path, data: PreparedDataset, *, imgsz: int, workdir: Path, split: str = "test"
) -> dict[str, float]:
    """mAP50, mAP50-95, precision, recall and per-class AP of `model_path` (.onnx or .pt) on `split`."""
    from ultralytics import YOLO

    model = YOLO(str(model_path), task="detect")
    result = model.val(
        data=str(data.data_yaml),
        split=split,
        imgsz=imgsz,
        batch=1 if Path(model_path).suffix == ".onnx" else 16,
        device="cpu",
        workers=0,
        plots=False,
        verbose=False,
        project=str(workdir),
        name=f"val-{split}-{Path(model_path).stem}",
        exist_ok=True,
    )
    box = result.box
    metrics = {"mAP50": box.map50, "mAP50-95": box.map, "precision": box.mp, "recall": box.mr}
    names = list(data.class_names)
    for row, class_index in enumerate(box.ap_class_index):
        name = names[int(class_index)] if int(class_index) < len(names) else str(class_index)
        metrics[metric_key(f"AP50/{name}")] = box.ap50[row]
        metrics[metric_key(f"AP50-95/{name}")] = box.ap[row]
    return {key: float(value) for key, value in metrics.items()}


def save_reference(model_path: Path, data: PreparedDataset, out: Path, *, imgsz: int, conf: float) -> Path:
    """The drift reference: descriptors of each validation image and the model's outputs on it."""
    import pandas as pd
    from PIL import Image
    from ultralytics import YOLO

    from mlops.inference.features import box_descriptors, image_features

    images = sorted(p for p in (data.path / "images" / "val").iterdir() if is_image(p))
    model = YOLO(str(model_path), task="detect")
    names = list(data.class_names)
    rows = []
    for path in images:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        result = model.predict(image, imgsz=imgsz, conf=conf, device="cpu", verbose=False)[0]
        boxes = result.boxes
        classes = boxes.cls.int().tolist() if boxes is not None else []
        confidences = boxes.conf.tolist() if boxes is not None else []
        corners = boxes.xyxyn.tolist() if boxes is not None else []
        row = {"image": path.name, **image_features(image), **box_descriptors(confidences, corners)}
        for index, name in enumerate(names):
            row[f"{CLASS_COUNT_PREFIX}{name}"] = sum(1 for cls in classes if cls == index)
        rows.append(row)
    pd.DataFrame(rows).to_parquet(out, index=False)
    logger.info("training.reference_saved path=%s rows=%s", out, len(rows))
    return out


def _score_baseline(
    registry: MlflowModelRegistry, baseline: ModelVersionInfo, data: PreparedDataset, workdir: Path
) -> dict[str, float]:
    metadata = registry.load_metadata(baseline)
    baseline_names = list(metadata.get("class_names") or [])
    if baseline_names != list(data.class_names):
        raise NotComparable(f"production v{baseline.version} detects {baseline_names}, not {list(data.class_names)}")
    role = ArtifactRole.ONNX if ArtifactRole.ONNX in baseline.artifacts else ArtifactRole.WEIGHTS
    path = registry.fetch(baseline, [role])[role]  # sha256-verified before anything loads it
    imgsz = int(metadata.get("imgsz") or 640)
    return evaluate_detector(path, data, imgsz=imgsz, workdir=workdir)


def _is_number(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def flat_params(params: YoloParams) -> dict:
    flat = {key: value for key, value in params.to_dict().items() if key != "extra"}
    flat.update({f"extra.{key}": value for key, value in params.extra.items()})
    return flat


def log_training_files(run: TrainingRun, fit: FitResult, reference: Path, data: PreparedDataset) -> None:
    """The weights, Ultralytics' plots and results table, the drift reference and the data's evidence."""
    if not fit.ultralytics_logged:
        # What Ultralytics' callback logs when it is on: the weights and the run's plots/CSV.
        for path in sorted(fit.best.parent.glob("*.pt")):
            run.log_artifact(path, "weights")
        for path in sorted(fit.save_dir.glob("*")):
            if path.suffix in {".png", ".jpg", ".csv", ".yaml"}:
                run.log_artifact(path)
    # The ONNX file is logged with the registered version (MLflow's ONNX flavour).
    run.log_artifact(reference, "reference")
    run.log_artifact(data.manifest_path, "data")
    if data.validation_report is not None:
        run.log_artifact(data.validation_report, "data")
