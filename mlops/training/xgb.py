"""Train, evaluate and register an XGBoost model on a prepared table.

`train_tabular` is the entry point: native JSON model, early stopping on the validation split,
test metrics (accuracy, ROC AUC, F1, log loss), the feature schema saved with the model, and the
drift reference (validation features + predicted probabilities) as parquet; all in one MLflow
run, then registered (MLflow's xgboost flavour) and compared with production on the same test
table. Inputs are always built by feature name in schema order, never by column position.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xgboost as xgb

from mlops.config import MlopsConfig
from mlops.data.prepare import PreparedDataset, load_prepared
from mlops.exceptions import InvalidInput, TrainingCancelled
from mlops.registry.entities import ArtifactRole, ModelKind, ModelVersionInfo
from mlops.registry.mlflow_store import MlflowModelRegistry
from mlops.training.compare import NotComparable, compare_with_production, record_comparison
from mlops.training.params import TabularParams
from mlops.training.results import TrainingOutcome
from mlops.training.tracking import TrainingRun, scratch_dir, training_run

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, int, dict], None]
StopCheck = Callable[[], bool]

PRIMARY_METRIC = "roc_auc"
MODEL_FILE = "model.json"
REFERENCE_FILE = "reference.parquet"
PROBABILITY_PREFIX = "proba_"
PROGRESS_EVERY = 10  # boosting rounds between on_epoch reports


@dataclass(frozen=True)
class BoosterFit:
    booster: Any
    rounds: int
    best_round: int
    cancelled: bool
    history: dict[str, list[float]]


def train_tabular(
    config: MlopsConfig,
    params: TabularParams | Mapping[str, Any] | None,
    dataset_dir: Path | str,
    *,
    model_name: str,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    description: str = "",
    params_file: Path | str | None = None,
) -> TrainingOutcome:
    """Train an XGBoost classifier on the prepared table in `dataset_dir` and register it.

    `on_epoch(round, n_estimators, metrics)` is called every few boosting rounds; `should_stop()`
    is polled every round. Cancelling raises TrainingCancelled after the run is marked KILLED.
    """
    started = time.monotonic()
    config.apply_process_env()
    params = TabularParams.resolve(params, params_file)
    data = load_prepared(dataset_dir, kind="tabular")
    registry = MlflowModelRegistry(config)
    workdir = scratch_dir(config, f"{model_name}-")
    try:
        with training_run(
            registry,
            kind=ModelKind.TABULAR,
            run_name=f"{model_name}-xgboost",
            params=params.to_dict(),
            data_version=data.data_version,
            config_hash=params.config_hash(),
            tags={"modelyard.model_name": model_name},
        ) as run:
            fit = fit_booster(params, data, on_epoch=on_epoch, should_stop=should_stop)
            if fit.cancelled:
                raise TrainingCancelled(
                    f"training of {model_name} was cancelled after {fit.rounds} rounds",
                    details={"run_id": run.run_id, "rounds": fit.rounds},
                )
            run.log_metric_history(fit.history)
            built = finish_tabular(run, fit.booster, data, workdir, rounds=fit.rounds, best_round=fit.best_round)
        return register_tabular(
            registry, run, built, data, model_name=model_name, description=description, started=started
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class TabularBuild:
    """A trained booster's files (model, schema, reference...) and its test metrics."""

    files: dict[str, Path]
    metrics: dict[str, float]
    rounds: int
    best_round: int


def finish_tabular(run: TrainingRun, booster, data: PreparedDataset, workdir: Path, *, rounds: int, best_round: int):
    """Save the model files, evaluate on the test split, log both to `run`."""
    files = save_model_files(booster, data, workdir)
    metrics = evaluate_booster(booster, data, "test")
    run.log_metrics({f"test/{key}": value for key, value in metrics.items()})
    run.log_metrics({"rounds": rounds, "best_round": best_round})
    _log_files(run, files, data)
    return TabularBuild(files=files, metrics=metrics, rounds=rounds, best_round=best_round)


def register_tabular(
    registry: MlflowModelRegistry,
    run: TrainingRun,
    built: TabularBuild,
    data: PreparedDataset,
    *,
    model_name: str,
    description: str,
    started: float,
) -> TrainingOutcome:
    """Register the build as a new version of `model_name`, compare it with production."""
    version = registry.register_version(
        model_name,
        ModelKind.TABULAR,
        built.files,
        metrics=built.metrics,
        metadata={
            "class_names": list(data.class_names),
            "feature_schema": list(data.feature_schema),
            "target": data.target,
            "data_version": data.data_version,
        },
        lineage=run.lineage,
        run_id=run.run_id,
        description=description,
    )
    comparison = compare_with_production(
        registry,
        version,
        built.metrics,
        primary_metric=PRIMARY_METRIC,
        data_version=data.data_version,
        score_baseline=lambda baseline: _score_baseline(registry, baseline, data),
    )
    record_comparison(registry, comparison, model_name, run.run_id)
    return TrainingOutcome(
        version=version,
        metrics=built.metrics,
        comparison=comparison,
        run_id=run.run_id,
        duration_s=time.monotonic() - started,
        epochs_run=built.rounds,
        best_epoch=built.best_round,
    )


def feature_matrix(frame, schema: list[dict] | tuple[dict, ...]):
    """The model input: columns picked by name in schema order, as float32."""
    names = [feature["name"] for feature in schema]
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise InvalidInput(f"the table lacks features {missing[:10]}", code="feature_missing")
    return frame[names].to_numpy(dtype="float32")


def fit_booster(
    params: TabularParams,
    data: PreparedDataset,
    *,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    on_round: Callable[[int, float], bool] | None = None,
) -> BoosterFit:
    """xgb.train with early stopping on the validation split.

    `on_round(round, val_loss) -> stop?` lets a hyperparameter search prune the trial.
    """
    import pandas as pd

    names = [feature["name"] for feature in data.feature_schema]
    train = pd.read_parquet(data.split_table("train"))
    val = pd.read_parquet(data.split_table("val"))
    n_classes = max(len(data.class_names), 2)
    dtrain = xgb.DMatrix(feature_matrix(train, data.feature_schema), label=train[data.target], feature_names=names)
    dval = xgb.DMatrix(feature_matrix(val, data.feature_schema), label=val[data.target], feature_names=names)
    booster_params = params.booster_params(n_classes)
    metric = booster_params["eval_metric"]
    reporter = _RoundReporter(params.n_estimators, metric, on_epoch, should_stop, on_round)
    history: dict = {}
    booster = xgb.train(
        booster_params,
        dtrain,
        num_boost_round=params.n_estimators,
        evals=[(dtrain, "train"), (dval, "val")],
        early_stopping_rounds=params.early_stopping_rounds if len(val) else None,
        evals_result=history,
        callbacks=[reporter],
        verbose_eval=False,
    )
    best_round = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1)) + 1
    series = {f"{split}/{name}": values for split, by_metric in history.items() for name, values in by_metric.items()}
    logger.info(
        "training.booster_finished rounds=%s best_round=%s cancelled=%s",
        booster.num_boosted_rounds(),
        best_round,
        reporter.cancelled,
    )
    return BoosterFit(
        booster=booster,
        rounds=booster.num_boosted_rounds(),
        best_round=best_round,
        cancelled=reporter.cancelled,
        history=series,
    )


class _RoundReporter(xgb.callback.TrainingCallback):
    """Reports progress every few rounds, lets a search prune, and polls for cancellation."""

    def __init__(self, total, metric, on_epoch, should_stop, on_round):
        super().__init__()
        self.total, self.metric = total, metric
        self.on_epoch, self.should_stop, self.on_round = on_epoch, should_stop, on_round
        self.cancelled = False

    def after_iteration(self, model, epoch, evals_log) -> bool:
        done = epoch + 1
        val_loss = float(evals_log.get("val", {}).get(self.metric, [float("nan")])[-1])
        if self.on_epoch is not None and (done % PROGRESS_EVERY == 0 or done == self.total):
            train_loss = float(evals_log.get("train", {}).get(self.metric, [float("nan")])[-1])
            self.on_epoch(done, self.total, {f"train/{self.metric}": train_loss, f"val/{self.metric}": val_loss})
        if self.on_round is not None and self.on_round(done, val_loss):
            return True
        if self.should_stop is not None and self.should_stop():
            logger.info("training.cancel_requested round=%s", done)
            self.cancelled = True
            return True
        return False


def predict_proba(booster, frame, schema) -> Any:
    """Class probabilities (n, n_classes) using the best iteration when early stopping kicked in."""
    import numpy as np

    names = [feature["name"] for feature in schema]
    matrix = xgb.DMatrix(feature_matrix(frame, schema), feature_names=names)
    best = getattr(booster, "best_iteration", None)
    kwargs = {"iteration_range": (0, int(best) + 1)} if best is not None else {}
    raw = booster.predict(matrix, **kwargs)
    if raw.ndim == 1:
        raw = np.stack([1 - raw, raw], axis=1)
    return raw


def classification_metrics(labels, probabilities) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    labels = labels.astype(int)
    n_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    metrics = {
        "accuracy": accuracy_score(labels, predicted),
        "f1": f1_score(labels, predicted, average="binary" if n_classes == 2 else "macro"),
        "log_loss": log_loss(labels, probabilities, labels=list(range(n_classes))),
    }
    if len(set(labels.tolist())) > 1:
        if n_classes == 2:
            metrics["roc_auc"] = roc_auc_score(labels, probabilities[:, 1])
        else:
            metrics["roc_auc"] = roc_auc_score(labels, probabilities, multi_class="ovr", labels=list(range(n_classes)))
    return {key: float(value) for key, value in metrics.items()}


def evaluate_booster(booster, data: PreparedDataset, split: str = "test", schema=None) -> dict[str, float]:
    import pandas as pd

    frame = pd.read_parquet(data.split_table(split))
    probabilities = predict_proba(booster, frame, schema or data.feature_schema)
    return classification_metrics(frame[data.target].to_numpy(), probabilities)


def save_model_files(booster, data: PreparedDataset, workdir: Path) -> dict[str, Path]:
    """The XGBoost JSON model (trimmed to the best round), feature schema and drift reference."""
    import pandas as pd

    workdir = Path(workdir)
    best = getattr(booster, "best_iteration", None)
    if best is not None and best + 1 < booster.num_boosted_rounds():
        booster = booster[: best + 1]  # what serving runs is exactly what was evaluated
    model_path = workdir / MODEL_FILE
    booster.save_model(str(model_path))
    schema_path = workdir / "feature_schema.json"
    schema_path.write_text(json.dumps(list(data.feature_schema), indent=2))
    val = pd.read_parquet(data.split_table("val"))
    names = [feature["name"] for feature in data.feature_schema]
    reference = val[names].copy()
    probabilities = predict_proba(booster, val, data.feature_schema)
    for index, name in enumerate(_class_labels(data, probabilities.shape[1])):
        reference[f"{PROBABILITY_PREFIX}{name}"] = probabilities[:, index]
    reference["prediction"] = probabilities.argmax(axis=1)
    reference["target"] = val[data.target].to_numpy()
    reference_path = workdir / REFERENCE_FILE
    reference.to_parquet(reference_path, index=False)
    return {
        ArtifactRole.XGBOOST: model_path,
        ArtifactRole.FEATURE_SCHEMA: schema_path,
        ArtifactRole.REFERENCE: reference_path,
        ArtifactRole.DATA_MANIFEST: data.manifest_path,
        **({ArtifactRole.VALIDATION_REPORT: data.validation_report} if data.validation_report else {}),
    }


def _class_labels(data: PreparedDataset, n: int) -> list[str]:
    names = list(data.class_names)
    return names if len(names) == n else [str(i) for i in range(n)]


def _score_baseline(registry: MlflowModelRegistry, baseline: ModelVersionInfo, data: PreparedDataset) -> dict:
    metadata = registry.load_metadata(baseline)
    schema = metadata.get("feature_schema") or []
    names = {feature["name"] for feature in data.feature_schema}
    missing = [feature["name"] for feature in schema if feature["name"] not in names]
    if missing:
        raise NotComparable(f"production v{baseline.version} needs features this data lacks: {missing[:10]}")
    if list(metadata.get("class_names") or []) != list(data.class_names):
        raise NotComparable(f"production v{baseline.version} predicts {metadata.get('class_names')}")
    path = registry.fetch(baseline, [ArtifactRole.XGBOOST])[ArtifactRole.XGBOOST]
    booster = xgb.Booster()
    booster.load_model(str(path))
    return evaluate_booster(booster, data, "test", schema=schema)


def _log_files(run: TrainingRun, files: dict[str, Path], data: PreparedDataset) -> None:
    # The model and its schema are logged with the registered version (MLflow's xgboost flavour).
    run.log_artifact(files[ArtifactRole.REFERENCE], "reference")
    run.log_artifact(data.manifest_path, "data")
    if data.validation_report is not None:
        run.log_artifact(data.validation_report, "data")


@dataclass(frozen=True)
class XGBoostModelFacts:
    """What an XGBoost model file says about itself: feature names (when it was trained with them),
    feature count and class count."""

    feature_names: list[str] | None
    n_features: int
    n_classes: int


def read_xgboost_model(path: Path) -> XGBoostModelFacts:
    """Read a saved XGBoost model's feature names and class count; InvalidInput for a file that is not one."""
    try:
        booster = xgb.Booster(model_file=str(path))
        learner = json.loads(booster.save_config())["learner"]
    except (xgb.core.XGBoostError, ValueError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"{path.name} is not an XGBoost model: {first_line[:200]}", code="invalid_model") from exc
    objective = learner.get("objective", {}).get("name", "")
    num_class = int(learner.get("learner_model_param", {}).get("num_class", "0") or 0)
    classes = num_class if num_class > 1 else 2 if objective.startswith(("binary:", "reg:logistic")) else 0
    if classes < 2:
        raise InvalidInput(
            f"{path.name} is not a classifier (objective {objective or 'unknown'}).", code="invalid_model"
        )
    names = list(booster.feature_names) if booster.feature_names else None
    return XGBoostModelFacts(feature_names=names, n_features=booster.num_features(), n_classes=classes)
