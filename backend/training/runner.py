"""What the `training.run_job` task does, step by step: claim, prepare data, train, record, promote.

The ML work is mlops' (mlops.data, mlops.training); this module only moves its progress into the
job row and turns its end (a version, a cancellation, an error) into the job's final state. A
JobReporter runs beside the trainer: it keeps the per-epoch history and the log tail, writes them
at most once a second, heartbeats from a thread every few seconds (so long evaluations and
exports do not look like a dead worker) and polls `cancel_requested` once a second, so the
trainer's per-batch `should_stop()` costs nothing.
"""

from __future__ import annotations

import collections
import logging
import re
import sys
import threading
import time
import traceback
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection

from backend.core.mlops_config import mlops_config
from backend.registry.services import PromotePermissionRequired, promote_version, record_version, stage_version
from backend.training import jobs
from backend.training.datasets import prepared_dataset
from backend.training.job_requests import split_params, trainer_kind
from backend.training.models import TrainingJob
from mlops.exceptions import InvalidInput, MlopsError, TrainingCancelled
from mlops.training.compare import promotion_allowed
from mlops.training.search import search_detector, search_tabular

logger = logging.getLogger(__name__)

Kind = TrainingJob.Kind
# The search each searchable kind of model runs (job_requests.SEARCH_TARGETS).
SEARCHES = {Kind.DETECTION: search_detector, Kind.TABULAR: search_tabular}

FLUSH_INTERVAL_S = 1.0  # progress writes, at most
CANCEL_POLL_S = 1.0  # reads of cancel_requested
HEARTBEAT_S = 10.0  # heartbeat writes from the monitor thread
LOG_TAIL_LINES = 200
LOG_LINE_CHARS = 500
HISTORY_POINTS = 2000  # curves keep at most this many points (tabular reports every few rounds)
ANSI_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CAPTURED_LOGGERS = ("", "ultralytics")  # root (mlops, backend) and Ultralytics, which does not propagate


class _TailHandler(logging.Handler):
    """Keeps the last lines logged in this process, for the job page."""

    def __init__(self, lines: int = LOG_TAIL_LINES):
        super().__init__(level=logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self.lock_tail = threading.Lock()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001  (a record that cannot be formatted must not break training)
            return
        line = ANSI_ESCAPES.sub("", line)  # Ultralytics colours its terminal output
        with self.lock_tail:
            self.lines.append(line[:LOG_LINE_CHARS])

    def text(self) -> str:
        with self.lock_tail:
            return "\n".join(self.lines)


class JobReporter:
    """The trainer's callbacks for one job: progress into the row, cancellation out of it."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.history: list[dict] = []
        self.latest: dict = {}
        self.epoch = 0
        self.epochs = 0
        self.run_id = ""
        self.experiment_id = ""
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._last_flush: float | None = None
        self._tail = _TailHandler()
        self._thread = threading.Thread(target=self._monitor, name=f"training-job-{job_id}-monitor", daemon=True)

    # -- context ---------------------------------------------------------------------------------
    def __enter__(self) -> JobReporter:
        for name in CAPTURED_LOGGERS:
            logging.getLogger(name).addHandler(self._tail)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join(timeout=10)
        for name in CAPTURED_LOGGERS:
            logging.getLogger(name).removeHandler(self._tail)

    def log_tail(self) -> str:
        return self._tail.text()

    # -- the trainer's callbacks -----------------------------------------------------------------
    def should_stop(self) -> bool:
        return self._cancel.is_set()

    def on_stage(self, stage: str) -> None:
        """Between steps outside the trainer: record the step, and stop here if cancelled."""
        if self._cancel.is_set() or jobs.cancel_requested(self.job_id):
            raise TrainingCancelled(f"job #{self.job_id} was cancelled while {stage}", details={"run_id": self.run_id})
        jobs.record_stage(self.job_id, stage)

    def on_epoch(self, epoch: int, epochs: int, metrics: dict) -> None:
        self.epoch, self.epochs = int(epoch), int(epochs)
        self.latest = {key: value for key, value in metrics.items() if _is_number(value)}
        self.history.append({"epoch": self.epoch, **self.latest})
        if len(self.history) > HISTORY_POINTS:
            self.history = self.history[::2]  # keep the whole curve, at half the resolution
        if not self.run_id:
            self._find_mlflow_run()
        now = time.monotonic()
        due = self._last_flush is None or now - self._last_flush >= FLUSH_INTERVAL_S
        if due or self.epoch >= self.epochs:
            self.flush()

    def trial_callback(self, *, minimize: bool):
        """on_trial for a search: one point per trial, with the trial's score and the best so far."""
        name = "val_loss" if minimize else "fitness"
        pick = min if minimize else max
        scores: list[float] = []

        def on_trial(number: int, total: int, record: dict) -> None:
            value = record.get("value")
            metrics = {}
            if _is_number(value):
                scores.append(float(value))
                metrics = {f"trial_{name}": float(value), f"best_{name}": pick(scores)}
            self.on_epoch(number, total, metrics)

        return on_trial

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        jobs.record_progress(
            self.job_id,
            epoch=self.epoch,
            epochs=self.epochs,
            metrics=self.latest,
            history=self.history,
            log_tail=self.log_tail(),
            mlflow_run_id=self.run_id,
            mlflow_experiment_id=self.experiment_id,
        )

    def _find_mlflow_run(self) -> None:
        """The trainer's MLflow run (the parent of a search's trial runs), for the link on the page."""
        import mlflow  # here, not at the top: MLflow stays off the web process's import path

        run = mlflow.active_run()
        if run is None:
            return
        self.run_id = run.data.tags.get("mlflow.parentRunId") or run.info.run_id
        self.experiment_id = run.info.experiment_id

    # -- the monitor thread ----------------------------------------------------------------------
    def _monitor(self) -> None:
        last_beat = time.monotonic()
        try:
            while not self._done.wait(CANCEL_POLL_S):
                try:
                    if not self._cancel.is_set() and jobs.cancel_requested(self.job_id):
                        logger.info("training.cancel_seen job=%s", self.job_id)
                        self._cancel.set()
                    if time.monotonic() - last_beat >= HEARTBEAT_S:
                        jobs.record_heartbeat(self.job_id, log_tail=self.log_tail())
                        last_beat = time.monotonic()
                except Exception:
                    logger.warning("training.monitor_error job=%s", self.job_id, exc_info=True)
        finally:
            connection.close()


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


# -- the job ---------------------------------------------------------------------------------------
def execute_job(job_id: int, *, task_id: str, hostname: str) -> str:
    """Run job `job_id` to a final state; returns that state ("skipped" when already claimed)."""
    job = jobs.claim_job(job_id, task_id=task_id, hostname=hostname)
    if job is None:
        return "skipped"
    with JobReporter(job.pk) as reporter:
        try:
            return _run(job, reporter)
        except TrainingCancelled as exc:
            jobs.finish_cancelled(
                job.pk, log_tail=reporter.log_tail(), run_id=reporter.run_id or exc.details.get("run_id", "")
            )
            return TrainingJob.Status.CANCELLED
        except Exception as exc:  # noqa: BLE001  (every failure, ours or a library's, ends the job as failed)
            code = getattr(exc, "code", "") if isinstance(exc, MlopsError) else _failure_code(exc)
            jobs.finish_failed(
                job.pk,
                message=f"{type(exc).__name__}: {exc}",
                code=code or "training_failed",
                traceback=traceback.format_exc(),
                log_tail=reporter.log_tail(),
            )
            return TrainingJob.Status.FAILED
        finally:
            _contain_mlflow()


def _failure_code(exc: BaseException) -> str:
    return "time_limit" if isinstance(exc, SoftTimeLimitExceeded) else "training_failed"


def _run(job: TrainingJob, reporter: JobReporter) -> str:
    config = mlops_config()
    config.apply_process_env()
    trainer_params, data_options = split_params(job.params, search=job.kind == Kind.SEARCH)
    trainer_params = with_training_device(job.kind, trainer_params)
    reporter.on_stage("preparing data")
    dataset = prepared_dataset(
        job.dataset,
        Path(settings.TRAINING_DATA_DIR),
        kind=trainer_kind(job.kind, job.params),
        ingest_options=data_options.get("data"),
        split=data_options.get("split"),
        validation=data_options.get("validate"),
        on_stage=reporter.on_stage,
    )
    reporter.on_stage("training")
    jobs.record_stage(job.pk, "training", data_version=dataset.data_version, dataset_path=str(dataset.path))
    outcome, run_id, extra_metrics = _train(job, config, trainer_params, dataset, reporter)
    reporter.run_id = run_id
    jobs.record_stage(job.pk, "registering")
    comparison = outcome.comparison.to_dict() if outcome.comparison is not None else {}
    version = record_version(outcome.version, comparison=comparison)
    promotion_error = _promote(job, version, comparison) if job.auto_promote else ""
    jobs.finish_succeeded(
        job.pk,
        version=version,
        metrics={**outcome.metrics, **extra_metrics},
        comparison=comparison,
        run_id=run_id,
        history=reporter.history,
        log_tail=reporter.log_tail(),
        promotion_error=promotion_error,
        steps=reporter.epoch if job.kind == Kind.SEARCH else outcome.epochs_run,
    )
    return TrainingJob.Status.SUCCEEDED


def with_training_device(kind: str, trainer_params: dict) -> dict:
    """YOLO jobs train on TRAINING_DEVICE (a GPU host's "0", "0,1", "mps") unless the job names its own."""
    if kind in (Kind.DETECTION, Kind.CLASSIFICATION) and settings.TRAINING_DEVICE:
        return {"device": settings.TRAINING_DEVICE, **trainer_params}
    return trainer_params


def _train(job: TrainingJob, config, trainer_params: dict, dataset, reporter: JobReporter):
    """Run the job's trainer; returns (the registered outcome, the job's MLflow run, extra metrics)."""
    common = {
        "model_name": job.model_name,
        "should_stop": reporter.should_stop,
        "description": f"trained by training job #{job.pk}",
    }
    if job.kind == Kind.DETECTION:
        from mlops.training.yolo import train_detector  # here: Ultralytics and torch stay off the web process

        outcome = train_detector(config, trainer_params, dataset.path, on_epoch=reporter.on_epoch, **common)
        return outcome, outcome.run_id, {}
    if job.kind == Kind.CLASSIFICATION:
        from mlops.training.yolo_classify import train_classifier  # here, as for the detector

        outcome = train_classifier(config, trainer_params, dataset.path, on_epoch=reporter.on_epoch, **common)
        return outcome, outcome.run_id, {}
    if job.kind == Kind.TABULAR:
        from mlops.training.xgb import train_tabular  # here: XGBoost stays off the web process

        outcome = train_tabular(config, trainer_params, dataset.path, on_epoch=reporter.on_epoch, **common)
        return outcome, outcome.run_id, {}
    target = trainer_kind(job.kind, job.params)
    search = SEARCHES.get(target)
    if search is None:  # refused at the door (job_requests); a row written some other way ends here
        raise InvalidInput(f"a search cannot tune a {target} model", code="bad_job_request")
    result = search(
        config,
        trainer_params,
        dataset.path,
        n_trials=job.params.get("trials"),
        space=job.params.get("space"),
        on_trial=reporter.trial_callback(minimize=target == Kind.TABULAR),
        **common,
    )
    extra = {"best_trial": result.best_trial, "best_value": result.best_value, "trials": len(result.trials)}
    return result.best, result.parent_run_id, extra


def _promote(job: TrainingJob, version, comparison: dict) -> str:
    """Promote the new version when it wins against production by the job's margin, else stage it
    for review; a refusal (smoke test, approval policy) is recorded, not raised.

    The promotion is the requester's, checked by the registry now (they may have lost the promote
    permission since they asked: then the version is staged, and the job says why). A job no person
    asked for (a command, a training policy: its trigger says which) promotes as the system.
    """
    allowed, why = promotion_allowed(comparison, margin=job.promote_margin)
    try:
        if not allowed:
            stage_version(version)
            logger.info("training.auto_promote_declined job=%s version=%s why=%s", job.pk, version, why)
            return f"not promoted: {why}; staged for review"
        if job.requested_by_id is None and not job.trigger:
            logger.warning("training.auto_promote_orphaned job=%s version=%s", job.pk, version)
            return _stage_instead(version, "not promoted: the person who asked for this job no longer exists")
        by = f"by training job #{job.pk}" + ("" if job.requested_by_id else f" ({job.trigger})")
        promote_version(version, actor=job.requested_by, reason=f"auto-promoted {by}: {why}")
    except PromotePermissionRequired as exc:
        logger.warning("training.auto_promote_forbidden job=%s version=%s error=%s", job.pk, version, exc.message)
        return _stage_instead(version, f"not promoted: {exc.message.rstrip('.')}")
    except MlopsError as exc:
        logger.warning("training.auto_promote_refused job=%s version=%s error=%s", job.pk, version, exc.message)
        return f"{exc.code}: {exc.message}"
    except Exception as exc:
        logger.exception("training.auto_promote_failed job=%s version=%s", job.pk, version)
        return f"{type(exc).__name__}: {exc}"
    logger.info("training.auto_promoted job=%s version=%s", job.pk, version)
    return ""


def _stage_instead(version, why: str) -> str:
    """Stage a version the job may not promote, for someone who may; the job's promotion_error says why."""
    try:
        stage_version(version)
    except MlopsError as exc:
        return f"{why}; not staged either ({exc.code}: {exc.message})"
    return f"{why}; staged for review"


def _contain_mlflow() -> None:
    """Undo what a training left in this process: autologging (Ultralytics turns it on) and open runs."""
    if "mlflow" not in sys.modules:
        return
    import mlflow  # loaded already (checked above); not at the top, to keep it off the web process

    try:
        mlflow.autolog(disable=True, silent=True)
        while mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED")
    except Exception:
        logger.warning("training.mlflow_cleanup_failed", exc_info=True)
