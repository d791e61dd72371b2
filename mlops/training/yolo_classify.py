"""Train, evaluate, export and register an Ultralytics YOLO image classifier.

`train_classifier` is the one entry point, shaped like `train_detector`: it trains on a prepared
classification dataset (mlops.data.prepare: `<split>/<class>/<image>`) inside one MLflow run,
exports ONNX, evaluates that ONNX file on the test split (top-1, top-5, accuracy per class), saves
the drift reference table, registers the version and compares it with production on the same
split. Progress, cancellation, model building, export and registration are mlops.training.yolo's.

Per epoch the run gets Ultralytics' own names: `train/loss`, `val/loss`, `metrics/accuracy_top1`,
`metrics/accuracy_top5` and the learning rates (step = epoch index; the last step is the final
evaluation of best.pt). `on_epoch` gets the same with the accuracies named `top1` and `top5`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlops.config import MlopsConfig
from mlops.data.layout import is_image
from mlops.data.prepare import PreparedDataset, load_prepared
from mlops.exceptions import TrainingCancelled
from mlops.registry.entities import ArtifactRole, ModelKind, ModelVersionInfo
from mlops.registry.mlflow_store import MlflowModelRegistry
from mlops.training.compare import NotComparable
from mlops.training.params import ClassifierParams
from mlops.training.results import PhaseTimer, TrainingOutcome
from mlops.training.tracking import TrainingRun, metric_key, scratch_dir, training_run
from mlops.training.yolo import (
    EpochCallback,
    FitResult,
    StopCheck,
    YoloBuild,
    export_onnx,
    fit_yolo,
    flat_params,
    logged_build,
    register_build,
)

logger = logging.getLogger(__name__)

KIND = str(ModelKind.CLASSIFICATION)
TASK = "classify"
PRIMARY_METRIC = "top1"
REFERENCE_FILE = "reference.parquet"
# The model-output columns of the drift reference table (after the image and its descriptors).
PREDICTED_CLASS = "predicted_class"
TOP1_CONFIDENCE = "top1_confidence"
OUTPUT_COLUMNS = (PREDICTED_CLASS, TOP1_CONFIDENCE)
_FRIENDLY = {"metrics/accuracy_top1": "top1", "metrics/accuracy_top5": "top5"}
# Reference images were validated (mlops.data.validate caps their pixels); these caps only guard decoding.
_REFERENCE_MAX_PIXELS = 40_000_000
_REFERENCE_MAX_SIDE = 40_000


def train_classifier(
    config: MlopsConfig,
    params: ClassifierParams | Mapping[str, Any] | None,
    dataset_dir: Path | str,
    *,
    model_name: str,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    description: str = "",
    params_file: Path | str | None = None,
) -> TrainingOutcome:
    """Train a classifier on the prepared dataset in `dataset_dir` and register it as a new version.

    Raises TrainingCancelled (after the MLflow run is marked KILLED) when `should_stop()` turned
    true; any other failure marks the run FAILED and propagates.
    """
    started = time.monotonic()
    config.apply_process_env()
    params = ClassifierParams.resolve(params, params_file)
    data = load_prepared(dataset_dir, kind=KIND)
    registry = MlflowModelRegistry(config)
    workdir = scratch_dir(config, f"{model_name}-")
    timer = PhaseTimer()
    try:
        run, built = build_classifier(
            config,
            params,
            data,
            workdir,
            model_name=model_name,
            on_epoch=on_epoch,
            should_stop=should_stop,
            timer=timer,
        )
        return register_classifier(
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


def build_classifier(
    config: MlopsConfig,
    params: ClassifierParams,
    data: PreparedDataset,
    workdir: Path,
    *,
    model_name: str,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    timer: PhaseTimer | None = None,
) -> tuple[TrainingRun, YoloBuild]:
    """Train, export, evaluate and save the reference inside the training's MLflow run (files in `workdir`).

    The run ends FINISHED with everything logged; nothing is registered yet (register_classifier).
    """
    registry = MlflowModelRegistry(config)
    timer = timer or PhaseTimer()
    with training_run(
        registry,
        kind=KIND,
        run_name=f"{model_name}-{params.architecture}",
        params=flat_params(params),
        data_version=data.data_version,
        config_hash=params.config_hash(),
        tags={"modelyard.model_name": model_name, "modelyard.task": TASK},
    ) as run:
        with timer.phase("fit"):
            fit = fit_classifier(
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
        built = finish_classifier(run, fit, params, data, workdir, timer=timer)
    return run, built


def fit_classifier(
    params: ClassifierParams,
    data: PreparedDataset,
    workdir: Path,
    *,
    experiment: str,
    run: TrainingRun | None = None,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    on_fit_epoch: Callable[[Any], None] | None = None,
) -> FitResult:
    """Ultralytics classification training with our callbacks; returns where the best weights are."""
    return fit_yolo(
        params,
        data,
        workdir,
        task=TASK,
        metric_names=_FRIENDLY,
        experiment=experiment,
        run=run,
        on_epoch=on_epoch,
        should_stop=should_stop,
        on_fit_epoch=on_fit_epoch,
    )


def finish_classifier(
    run: TrainingRun,
    fit: FitResult,
    params: ClassifierParams,
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
        metrics = evaluate_classifier(onnx, data, imgsz=params.imgsz, workdir=workdir)
    with timer.phase("reference"):
        reference = save_classifier_reference(onnx, data, Path(workdir) / REFERENCE_FILE, imgsz=params.imgsz)
    return logged_build(run, fit, onnx, metrics, reference, data, timer=timer)


def register_classifier(
    registry: MlflowModelRegistry,
    run: TrainingRun,
    built: YoloBuild,
    params: ClassifierParams,
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
        kind=ModelKind.CLASSIFICATION,
        task=TASK,
        model_name=model_name,
        metadata={},
        data=data,
        primary_metric=PRIMARY_METRIC,
        score_baseline=lambda baseline: _score_baseline(registry, baseline, data, workdir),
        description=description,
        started=started,
        timer=timer,
    )


# -- evaluation, reference ---------------------------------------------------------------------


def evaluate_classifier(
    model_path: Path, data: PreparedDataset, *, imgsz: int, workdir: Path, split: str = "test"
) -> dict[str, float]:
    """top1, top5 and the accuracy of each class (`accuracy/<class>`) of `model_path` (.onnx or .pt) on `split`.

    Ultralytics' validator reads the split with the same transforms as training's validation; top5
    counts min(5, classes) guesses, so it is 1.0 for five classes or fewer.
    """
    from ultralytics import YOLO

    model = YOLO(str(model_path), task=TASK)
    result = model.val(
        data=data.ultralytics_data,
        split=split,
        imgsz=imgsz,
        batch=16,
        device="cpu",
        workers=0,
        plots=False,
        verbose=False,
        project=str(workdir),
        name=f"val-{split}-{Path(model_path).stem}",
        exist_ok=True,
    )
    metrics = {"top1": result.top1, "top5": result.top5}
    matrix = result.confusion_matrix.matrix  # rows: predicted class, columns: true class
    for index, name in enumerate(data.class_names):
        if index < matrix.shape[1] and matrix[:, index].sum() > 0:
            metrics[metric_key(f"accuracy/{name}")] = matrix[index, index] / matrix[:, index].sum()
    return {key: float(value) for key, value in metrics.items()}


def save_classifier_reference(
    model_path: Path, data: PreparedDataset, out: Path, *, imgsz: int, split: str = "test"
) -> Path:
    """The drift reference: per image of `split`, its descriptors, the predicted class and its confidence.

    The table has the detector's format (mlops.training.yolo.save_reference): one parquet row per
    image, `image` (here `<class>/<file>`) first, then mlops.inference.features' descriptors, then
    the outputs: `predicted_class` (a class name) and `top1_confidence`. Images are decoded the
    way serving decodes uploads, so the descriptors of both tables mean the same.
    """
    import pandas as pd
    from ultralytics import YOLO

    from mlops.inference.features import image_features
    from mlops.inference.images import decode_image

    folder = data.split_dir(split)
    images = sorted(p for p in folder.glob("*/*") if is_image(p))
    model = YOLO(str(model_path), task=TASK)
    names = list(data.class_names)
    rows = []
    for path in images:
        image = decode_image(path.read_bytes(), max_pixels=_REFERENCE_MAX_PIXELS, max_side=_REFERENCE_MAX_SIDE)
        probs = model.predict(image, imgsz=imgsz, device="cpu", verbose=False)[0].probs
        rows.append(
            {
                "image": path.relative_to(folder).as_posix(),
                **image_features(image),
                PREDICTED_CLASS: names[int(probs.top1)] if int(probs.top1) < len(names) else str(probs.top1),
                TOP1_CONFIDENCE: float(probs.top1conf),
            }
        )
    pd.DataFrame(rows).to_parquet(out, index=False)
    logger.info("training.reference_saved path=%s rows=%s task=%s", out, len(rows), TASK)
    return out


def _score_baseline(
    registry: MlflowModelRegistry, baseline: ModelVersionInfo, data: PreparedDataset, workdir: Path
) -> dict[str, float]:
    metadata = registry.load_metadata(baseline)
    baseline_names = list(metadata.get("class_names") or [])
    if metadata.get("task", TASK) != TASK:
        raise NotComparable(f"production v{baseline.version} is a {metadata.get('task')} model, not a classifier")
    if baseline_names != list(data.class_names):
        raise NotComparable(f"production v{baseline.version} classifies {baseline_names}, not {list(data.class_names)}")
    role = ArtifactRole.ONNX if ArtifactRole.ONNX in baseline.artifacts else ArtifactRole.WEIGHTS
    path = registry.fetch(baseline, [role])[role]  # sha256-verified before anything loads it
    imgsz = int(metadata.get("imgsz") or 224)
    return evaluate_classifier(path, data, imgsz=imgsz, workdir=workdir)
