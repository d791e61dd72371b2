"""Starting, enqueueing and cancelling training jobs, and the reaper.

What a request means and whether it can run is requests.py's; the lifecycle the task drives once
a job runs (claim, heartbeat, progress, its end) is jobs.py's.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from backend.training.jobs import finish_failed
from backend.training.models import TrainingJob
from backend.training.requests import (
    DEFAULT_DATASETS,
    check_job_request,
    default_model_name,
    raise_for_problems,
    trainer_kind,
)
from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)

Status = TrainingJob.Status

# A queued job's message may be re-sent this many times before the job is failed.
MAX_ENQUEUES = 3


class JobConflict(MlopsError):
    """The request contradicts the job's state (cancelling a finished job, a duplicate start...)."""

    code = "job_conflict"
    status = 409


# -- starting and cancelling ---------------------------------------------------------------------
def start_job(
    kind: str,
    *,
    model_name: str = "",
    dataset: str = "",
    params: dict | None = None,
    auto_promote: bool = False,
    user=None,
    dedupe_key: str = "",
) -> TrainingJob:
    """Create a queued job and send it to the training queue once the row is committed.

    With a `dedupe_key`, JobConflict is raised while another job with that key is queued or running.
    """
    params = dict(params or {})
    raise_for_problems(check_job_request(kind, model_name=model_name, dataset=dataset, params=params))
    target = trainer_kind(kind, params)
    try:
        with transaction.atomic():
            job = TrainingJob.objects.create(
                kind=kind,
                model_name=model_name or default_model_name(target),
                dataset=dataset or DEFAULT_DATASETS[target],
                params=params,
                auto_promote=auto_promote,
                dedupe_key=dedupe_key,
                requested_by=user if user is not None and user.is_authenticated else None,
                stage="queued",
            )
    except IntegrityError as exc:
        raise JobConflict(f"a job with key {dedupe_key!r} is already queued or running") from exc
    logger.info("training.job_created job=%s kind=%s model=%s dataset=%s", job.pk, kind, job.model_name, job.dataset)
    transaction.on_commit(lambda: enqueue_job(job.pk))
    return job


def enqueue_job(job_id: int) -> bool:
    """Send the job's message (a fresh task id each time); a broker that refuses it fails the job."""
    from backend.training.tasks import run_job

    task_id = str(uuid.uuid4())
    updated = TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        celery_task_id=task_id, enqueued_at=timezone.now(), enqueue_count=F("enqueue_count") + 1
    )
    if not updated:
        return False
    try:
        run_job.apply_async(kwargs={"job_id": job_id}, task_id=task_id)
    except Exception as exc:
        finish_failed(
            job_id,
            message=f"the job could not be queued: the broker refused the message ({type(exc).__name__}: {exc})",
            code="broker_unavailable",
            from_statuses=(Status.QUEUED,),
        )
        logger.exception("training.enqueue_failed job=%s", job_id)
        return False
    logger.info("training.job_enqueued job=%s task=%s", job_id, task_id)
    return True


def cancel_job(job: TrainingJob, *, user=None) -> TrainingJob:
    """Cancel a queued job at once (its message is revoked); ask a running one to stop.

    A running trainer polls `cancel_requested` and stops at the next batch; the job then ends in
    `cancelled` and its MLflow run in KILLED.
    """
    from backend import celery_app

    who = getattr(user, "username", None) or "system"
    cancelled = TrainingJob.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        status=Status.CANCELLED,
        cancel_requested=True,
        finished_at=timezone.now(),
        stage="cancelled",
        error=f"cancelled by {who} before it started",
        error_code="cancelled",
    )
    if cancelled:
        if job.celery_task_id:
            try:
                celery_app.control.revoke(job.celery_task_id)
            except Exception:  # the claim refuses a cancelled job anyway; the revoke only saves a delivery
                logger.warning("training.revoke_failed job=%s task=%s", job.pk, job.celery_task_id, exc_info=True)
        logger.info("training.job_cancelled job=%s by=%s while=queued", job.pk, who)
    elif TrainingJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(cancel_requested=True):
        logger.info("training.cancel_requested job=%s by=%s", job.pk, who)
    else:
        job.refresh_from_db()
        raise JobConflict(f"job #{job.pk} is already {job.status}")
    job.refresh_from_db()
    return job


# -- the reaper ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReapResult:
    failed: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"failed": self.failed, "requeued": self.requeued}


# A running job is only judged by its worker's answers once its heartbeat is this old: the
# heartbeat thread writes every HEARTBEAT_SECONDS, so a younger one proves the process is alive.
WORKER_CHECK_AFTER = timedelta(seconds=90)


_LOOK_UP = object()


def reap_stale_jobs(
    *, now=None, workers=_LOOK_UP, broker_task_ids=_LOOK_UP, worker_check_after: timedelta = WORKER_CHECK_AFTER
) -> ReapResult:
    """Fail running jobs whose worker died; re-send (or fail) queued jobs whose message was lost.

    Running: failed when the heartbeat is older than TRAINING_STALE_AFTER_SECONDS, or older than
    WORKER_CHECK_AFTER while its worker does not answer or answers without the job's task.
    Queued: when the message is in neither the broker's queue nor its unacknowledged set (Redis)
    after TRAINING_STALE_AFTER_SECONDS, it is sent again, up to MAX_ENQUEUES times, then failed.
    A duplicate message is harmless (the claim runs a job once). With a broker we cannot look
    into, queued jobs are left alone.

    `workers` ({hostname: {task ids}}) and `broker_task_ids` (a set) are looked up from Celery
    when not given; None stands for "could not tell".
    """
    from backend.training import broker

    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.TRAINING_STALE_AFTER_SECONDS)
    result = ReapResult()

    running = list(TrainingJob.objects.filter(status=Status.RUNNING, heartbeat_at__lt=now - worker_check_after))
    if workers is _LOOK_UP:
        workers = broker.active_tasks_by_worker() if running else None
    for job in running:
        silent_s = int((now - job.heartbeat_at).total_seconds())
        if job.heartbeat_at < now - stale_after:
            code = "heartbeat_lost"
            message = f"no heartbeat from worker {job.worker_hostname or '?'} for {silent_s}s: the worker died or hung"
        elif workers is not None and job.worker_hostname and job.worker_hostname not in workers:
            code = "worker_lost"
            message = f"worker {job.worker_hostname} is gone (no answer; last heartbeat {silent_s}s ago)"
        elif workers is not None and job.worker_hostname and job.celery_task_id not in workers[job.worker_hostname]:
            code = "worker_lost"
            message = (
                f"worker {job.worker_hostname} is no longer running the job's task "
                f"(its process died; last heartbeat {silent_s}s ago)"
            )
        else:
            continue
        if finish_failed(job.pk, message=message, code=code):
            result.failed.append(job.pk)
            _end_orphaned_run(job.mlflow_run_id)

    lost_before = now - stale_after
    queued = list(TrainingJob.objects.filter(status=Status.QUEUED, enqueued_at__lt=lost_before))
    if broker_task_ids is _LOOK_UP:
        broker_task_ids = broker.pending_task_ids() if queued else None
    if queued and broker_task_ids is None:
        logger.info("training.reap_queued_skipped reason=broker_not_inspectable jobs=%s", len(queued))
    for job in queued if broker_task_ids is not None else []:
        if job.celery_task_id in broker_task_ids:
            continue
        if job.enqueue_count >= MAX_ENQUEUES:
            message = f"the broker lost the job's message {job.enqueue_count} times; no worker ever started it"
            if finish_failed(job.pk, message=message, code="message_lost", from_statuses=(Status.QUEUED,)):
                result.failed.append(job.pk)
        elif enqueue_job(job.pk):
            result.requeued.append(job.pk)
    if result.failed or result.requeued:
        logger.warning("training.reaped failed=%s requeued=%s", result.failed, result.requeued)
    return result


def _end_orphaned_run(run_id: str) -> None:
    """A worker that died left its MLflow run RUNNING: mark it FAILED like the job."""
    if not run_id:
        return
    from backend.registry.services import model_registry

    try:
        client = model_registry().client
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="FAILED")
            client.set_tag(run_id, "modelyard.error", "the training's worker died (marked failed by the reaper)")
    except Exception:  # the job's state is what matters; MLflow may be down or the run gone
        logger.warning("training.orphaned_run_not_ended run=%s", run_id, exc_info=True)


def active_job_for(model_name: str) -> TrainingJob | None:
    return TrainingJob.objects.filter(model_name=model_name, status__in=TrainingJob.ACTIVE_STATUSES).first()
