"""The lifecycle of a job the `training.run_job` task drives: claim, heartbeat, stage, progress, and
its end (succeeded, failed, cancelled), plus the `cancel_requested` flag the trainer polls.

Transitions that race (a worker claiming, a person cancelling, the reaper failing a job) are
conditional updates on `status`, so each one happens at most once whoever gets there first.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from backend.training.models import TrainingJob
from backend.training.signals import training_job_failed

logger = logging.getLogger(__name__)

Status = TrainingJob.Status

# The error codes the reaper (reaper.py) fails jobs with: a late success from a worker it gave up on
# still counts. Here rather than there because finish_succeeded decides on them.
REAPED_CODES = ("heartbeat_lost", "worker_lost", "message_lost")


def claim_job(job_id: int, *, task_id: str, hostname: str) -> TrainingJob | None:
    """queued -> running, once: a second delivery of the same message finds nothing to claim."""
    now = timezone.now()
    claimed = TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        status=Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        celery_task_id=task_id or "",
        worker_hostname=hostname or "",
        stage="starting",
        progress=0.0,
    )
    if not claimed:
        state = TrainingJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
        logger.warning("training.claim_skipped job=%s task=%s status=%s", job_id, task_id, state)
        return None
    logger.info("training.job_claimed job=%s task=%s worker=%s", job_id, task_id, hostname)
    return TrainingJob.objects.get(pk=job_id)


def cancel_requested(job_id: int) -> bool:
    return bool(TrainingJob.objects.filter(pk=job_id).values_list("cancel_requested", flat=True).first())


# -- while it runs ---------------------------------------------------------------------------------
def record_heartbeat(job_id: int, *, log_tail: str | None = None) -> bool:
    changes = {"heartbeat_at": timezone.now(), **_given(log_tail=log_tail)}
    return bool(_running(job_id).update(**changes))


def record_stage(job_id: int, stage: str, **changes) -> None:
    _running(job_id).update(stage=stage, heartbeat_at=timezone.now(), **changes)


def record_progress(
    job_id: int,
    *,
    epoch: int,
    epochs: int,
    metrics: dict,
    history: list[dict],
    log_tail: str | None = None,
    mlflow_run_id: str = "",
    mlflow_experiment_id: str = "",
) -> None:
    """One epoch's progress: the bar, the latest metrics and the curves' points."""
    changes = {
        "epoch": epoch,
        "epochs": epochs,
        "progress": round(min(100.0, 100.0 * epoch / epochs), 2) if epochs else 0.0,
        "metrics": metrics,
        "history": history,
        "heartbeat_at": timezone.now(),
        **_given(log_tail=log_tail),
    }
    if mlflow_run_id:
        changes["mlflow_run_id"] = mlflow_run_id
        changes["mlflow_experiment_id"] = mlflow_experiment_id
    _running(job_id).update(**changes)


# -- its end ---------------------------------------------------------------------------------------
def finish_succeeded(
    job_id: int,
    *,
    version,
    metrics: dict,
    comparison: dict,
    run_id: str,
    history: list[dict] | None = None,
    log_tail: str | None = None,
    promotion_error: str = "",
    steps: int | None = None,
) -> bool:
    """running -> succeeded with the registered version; also over a reaper's verdict that came too early."""
    now = timezone.now()
    changes = {
        "status": Status.SUCCEEDED,
        "stage": "done",
        "model_version": version,
        "metrics": metrics,
        "comparison": comparison,
        "mlflow_run_id": run_id,
        "progress": 100.0,
        "finished_at": now,
        "heartbeat_at": now,
        "promotion_error": promotion_error,
        "error": "",
        "error_code": "",
        "traceback": "",
        **_given(history=history, log_tail=log_tail),
    }
    if steps:
        # Early stopping ends before the planned count: the bar shows what actually ran, complete.
        changes["epoch"] = changes["epochs"] = steps
    updated = TrainingJob.objects.filter(
        Q(status=Status.RUNNING) | Q(status=Status.FAILED, error_code__in=REAPED_CODES), pk=job_id
    ).update(**changes)
    logger.info("training.job_succeeded job=%s version=%s updated=%s", job_id, version, updated)
    return bool(updated)


def finish_failed(
    job_id: int,
    *,
    message: str,
    code: str = "training_failed",
    traceback: str = "",
    log_tail: str | None = None,
    from_statuses: tuple[str, ...] = (Status.RUNNING,),
) -> bool:
    changes = {
        "status": Status.FAILED,
        "stage": "failed",
        "error": message[:10000],
        "error_code": code[:64],
        "traceback": traceback[-50000:],
        "finished_at": timezone.now(),
        **_given(log_tail=log_tail),
    }
    updated = TrainingJob.objects.filter(pk=job_id, status__in=from_statuses).update(**changes)
    if updated:
        logger.warning("training.job_failed job=%s code=%s error=%s", job_id, code, message[:300])
        transaction.on_commit(
            lambda: training_job_failed.send(sender=TrainingJob, job_id=job_id, code=code, message=message[:2000])
        )
    return bool(updated)


def finish_cancelled(job_id: int, *, log_tail: str | None = None, run_id: str = "") -> bool:
    changes = {
        "status": Status.CANCELLED,
        "stage": "cancelled",
        "finished_at": timezone.now(),
        "error_code": "cancelled",
        **_given(log_tail=log_tail),
    }
    if run_id:
        changes["mlflow_run_id"] = run_id
    updated = _running(job_id).update(**changes)
    logger.info("training.job_cancelled job=%s while=running", job_id)
    return bool(updated)


def _running(job_id: int):
    return TrainingJob.objects.filter(pk=job_id, status=Status.RUNNING)


def _given(**values) -> dict:
    """The optional changes a caller passed (None: leave the column as it is)."""
    return {name: value for name, value in values.items() if value is not None}
