"""One MLflow run per training, with lineage tags, a final status that says what happened, and
Ultralytics' MLflow callback kept inside it.

The run is started with MLflow's fluent API so that Ultralytics' callback (which logs per-epoch
metrics and the weights/plots into `mlflow.active_run()`) lands in our run instead of opening its
own. That callback also calls `mlflow.autolog()` for the whole process; `ultralytics_mlflow_scope`
points it at our experiment and switches autologging off again when training ends.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mlops.exceptions import TrainingCancelled
from mlops.registry.entities import Lineage
from mlops.registry.mlflow_store import TAG_KIND, MlflowModelRegistry

logger = logging.getLogger(__name__)

REPO_DIR = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "torchvision", "ultralytics", "xgboost", "mlflow", "onnx", "onnxruntime", "optuna", "scikit-learn")
TAG_DATA_VERSION = "modelyard.data_version"
TAG_CONFIG_HASH = "modelyard.config_hash"
TAG_GIT_COMMIT = "modelyard.git_commit"
TAG_PARENT = "mlflow.parentRunId"


def git_commit(repo_dir: Path | None = None) -> str:
    """The checkout's commit; from GIT_COMMIT/SOURCE_COMMIT when not a repository (an image build)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_dir or REPO_DIR, capture_output=True, text=True, timeout=5
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        logger.info("training.git_unavailable")
    return os.environ.get("GIT_COMMIT") or os.environ.get("SOURCE_COMMIT") or "unknown"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def finite_metrics(metrics: Mapping[str, object]) -> dict[str, float]:
    """Numbers MLflow accepts: floats, finite, with keys made of the characters it allows."""
    clean = {}
    for key, value in metrics.items():
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            clean[metric_key(key)] = number
    return clean


def metric_key(key: str) -> str:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. /:")
    return "".join(ch if ch in allowed else "_" for ch in str(key).replace("(", "").replace(")", ""))


@dataclass
class TrainingRun:
    """The MLflow run a training writes into, and the lineage it will register with."""

    run_id: str
    experiment_id: str
    lineage: Lineage
    registry: MlflowModelRegistry

    @property
    def client(self):
        return self.registry.client

    def log_metrics(self, metrics: Mapping[str, object], step: int | None = None) -> None:
        import mlflow
        from mlflow.entities import Metric

        clean = finite_metrics(metrics)
        if not clean:
            return
        now = int(mlflow.utils.time.get_current_time_millis())
        entities = [Metric(key, value, now, step or 0) for key, value in clean.items()]
        self.client.log_batch(self.run_id, metrics=entities)

    def log_metric_history(self, history: Mapping[str, list[float]]) -> None:
        """Per-step series (XGBoost's per-round losses) in one batch per 1000 points."""
        import mlflow
        from mlflow.entities import Metric

        now = int(mlflow.utils.time.get_current_time_millis())
        entities = [
            Metric(metric_key(key), float(value), now, step)
            for key, values in history.items()
            for step, value in enumerate(values)
            if math.isfinite(float(value))
        ]
        for start in range(0, len(entities), 1000):
            self.client.log_batch(self.run_id, metrics=entities[start : start + 1000])

    def log_params(self, params: Mapping[str, object]) -> None:
        """Log params the run does not hold yet (Ultralytics' callback may have logged the same keys)."""
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        fresh = [
            Param(key, _param_value(value))
            for key, value in params.items()
            if key not in existing and _param_value(value) != ""
        ]
        for start in range(0, len(fresh), 100):
            self.client.log_batch(self.run_id, params=fresh[start : start + 100])

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))


def _param_value(value: object) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list | tuple) else str(value)
    return text[:6000]


@contextmanager
def training_run(
    registry: MlflowModelRegistry,
    *,
    kind: str,
    run_name: str,
    params: Mapping[str, object],
    data_version: str,
    config_hash: str,
    parent_run_id: str | None = None,
    tags: Mapping[str, object] | None = None,
) -> Iterator[TrainingRun]:
    """Start the training's MLflow run (the fluent active run) and end it with the right status.

    FINISHED when the block completes, KILLED when it raises TrainingCancelled, FAILED otherwise
    (the error's type and message are tagged). The exception propagates either way.
    """
    import mlflow

    registry.config.apply_process_env()
    mlflow.set_tracking_uri(registry.config.tracking_uri)
    experiment_id = registry.experiment_id()
    commit = git_commit()
    packages = package_versions()
    run = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        nested=parent_run_id is not None and mlflow.active_run() is not None,
        parent_run_id=parent_run_id,
        tags={
            TAG_KIND: kind,
            TAG_DATA_VERSION: data_version,
            TAG_CONFIG_HASH: config_hash,
            TAG_GIT_COMMIT: commit,
            "mlflow.source.git.commit": commit,
            **{f"modelyard.package.{name}": version for name, version in packages.items()},
            **{key: str(value) for key, value in (tags or {}).items()},
        },
    )
    run_id = run.info.run_id
    lineage = Lineage(
        run_id=run_id, git_commit=commit, data_version=data_version, config_hash=config_hash, packages=packages
    )
    tracked = TrainingRun(run_id=run_id, experiment_id=experiment_id, lineage=lineage, registry=registry)
    logger.info("training.run_started run=%s kind=%s name=%s", run_id, kind, run_name)
    status = "FAILED"
    try:
        tracked.log_dict(dict(params), "training_params.json")
        yield tracked
        status = "FINISHED"
    except TrainingCancelled:
        status = "KILLED"
        raise
    except BaseException as exc:
        tracked.set_tags({"modelyard.error": f"{type(exc).__name__}: {exc}"[:5000]})
        raise
    finally:
        # Params go in last: Ultralytics' callback logs its own (a superset, as it resolved them)
        # and fails on a key logged before with another value (it forces workers=0 on CPU).
        tracked.log_params(params)
        _end_run(run_id, status)
        logger.info("training.run_ended run=%s status=%s", run_id, status)


def _end_run(run_id: str, status: str) -> None:
    """End our run whatever else is on MLflow's stack (a callback may have left a run open)."""
    import mlflow

    active = mlflow.active_run()
    while active is not None and active.info.run_id != run_id:
        mlflow.end_run()
        active = mlflow.active_run()
    if active is not None:
        mlflow.end_run(status=status)
    else:
        from mlflow import MlflowClient

        MlflowClient().set_terminated(run_id, status=status)


@contextmanager
def ultralytics_mlflow_scope(experiment: str) -> Iterator[None]:
    """Let Ultralytics' MLflow callback log into the active run, then undo its process-wide effects.

    The callback picks the experiment from MLFLOW_EXPERIMENT_NAME (else the project folder: a new
    experiment per run) and turns on `mlflow.autolog()` for every library in the process.
    """
    import mlflow

    saved = {key: os.environ.get(key) for key in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_KEEP_RUN_ACTIVE")}
    os.environ["MLFLOW_EXPERIMENT_NAME"] = experiment
    os.environ.pop("MLFLOW_KEEP_RUN_ACTIVE", None)
    try:
        yield
    finally:
        mlflow.autolog(disable=True, silent=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def scratch_dir(config, prefix: str) -> Path:
    """A private working folder under var/ (Ultralytics writes runs there)."""
    base = Path(config.var_dir) / "training"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))
