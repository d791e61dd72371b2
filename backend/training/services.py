"""Starting, enqueueing and cancelling training jobs: what the API, the admin and the commands ask.

The lifecycle the task drives once a job runs is in jobs.py, the reaper in reaper.py. A job's
message is sent by task name (RUN_JOB_TASK), so this module never imports the tasks that call it.
"""

from __future__ import annotations

import logging
import uuid

from celery import current_app
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone

from backend.core import metrics
from backend.core.queue import QueueUnavailable, send_task
from backend.registry.services import require_promote_permission
from backend.training.job_requests import (
    AUTO_PROMOTE_DOING,
    DEFAULT_DATASETS,
    SYSTEM_TRIGGER,
    check_job_request,
    default_model_name,
    raise_for_problems,
    trainer_kind,
)
from backend.training.jobs import finish_failed
from backend.training.models import TrainingJob
from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)

Status = TrainingJob.Status

# The name of the task that runs a job (tasks.run_job); CELERY_TASK_ROUTES sends it to the `training` queue.
RUN_JOB_TASK = "training.run_job"


BROKER_UNAVAILABLE = "broker_unavailable"


class JobConflict(MlopsError):
    """The request contradicts the job's state (cancelling a finished job, a duplicate start...)."""

    code = "job_conflict"
    status = 409


def start_job(
    kind: str,
    *,
    model_name: str = "",
    dataset: str = "",
    params: dict | None = None,
    auto_promote: bool = False,
    promote_margin: float = 0.0,
    user=None,
    dedupe_key: str = "",
    trigger: str = "",
) -> TrainingJob:
    """Create a queued job and send it to the training queue once the row is committed.

    `user` is the person asking; with `auto_promote` they need the registry's promote permission
    (PromotePermissionRequired, 403). No user is the system (a command, a training policy): `trigger`
    says what started it, and the job promotes as the system. With a `dedupe_key`, JobConflict is
    raised while another job with that key is queued or running.
    """
    params = dict(params or {})
    if user is not None and trigger:
        raise ValueError("a trigger says what started a job no person asked for; this one has a requester")
    raise_for_problems(check_job_request(kind, model_name=model_name, dataset=dataset, params=params))
    if auto_promote:
        require_promote_permission(user, doing=AUTO_PROMOTE_DOING)
    target = trainer_kind(kind, params)
    try:
        with transaction.atomic():
            job = TrainingJob.objects.create(
                kind=kind,
                model_name=model_name or default_model_name(target),
                dataset=dataset or DEFAULT_DATASETS[target],
                params=params,
                auto_promote=auto_promote,
                promote_margin=promote_margin,
                dedupe_key=dedupe_key,
                trigger=(trigger or (SYSTEM_TRIGGER if user is None else ""))[:300],
                requested_by=user if user is not None and user.is_authenticated else None,
                stage="queued",
            )
    except IntegrityError as exc:
        raise JobConflict(f"a job with key {dedupe_key!r} is already queued or running") from exc
    logger.info("training.job_created job=%s kind=%s model=%s dataset=%s", job.pk, kind, job.model_name, job.dataset)
    transaction.on_commit(lambda: enqueue_job(job.pk))
    if not transaction.get_connection().in_atomic_block:  # committed, and the message sent (or refused) already
        job.refresh_from_db()
        if job.status == Status.FAILED and job.error_code == BROKER_UNAVAILABLE:
            raise QueueUnavailable(
                f"The task queue does not answer: training job #{job.pk} could not be started (it is kept, "
                "failed, with the reason). Try again when the queue is back.",
                details={"job": job.pk},
            )
    return job


def enqueue_job(job_id: int) -> bool:
    """Send the job's message (a fresh task id each time); a broker that refuses it fails the job."""
    task_id = str(uuid.uuid4())
    updated = TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        celery_task_id=task_id, enqueued_at=timezone.now(), enqueue_count=F("enqueue_count") + 1
    )
    if not updated:
        return False
    try:
        send_task(RUN_JOB_TASK, kwargs={"job_id": job_id}, task_id=task_id)
    except Exception as exc:
        finish_failed(
            job_id,
            message=f"the job could not be queued: the broker refused the message ({type(exc).__name__}: {exc})",
            code=BROKER_UNAVAILABLE,
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
    who = getattr(user, "username", None) or "system"
    if _cancel_queued(job, who):
        _revoke(job)
        logger.info("training.job_cancelled job=%s by=%s while=queued", job.pk, who)
    elif TrainingJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(cancel_requested=True):
        logger.info("training.cancel_requested job=%s by=%s", job.pk, who)
    else:
        job.refresh_from_db()
        raise JobConflict(f"job #{job.pk} is already {job.status}")
    job.refresh_from_db()
    return job


def _cancel_queued(job: TrainingJob, who: str) -> bool:
    return bool(
        TrainingJob.objects.filter(pk=job.pk, status=Status.QUEUED).update(
            status=Status.CANCELLED,
            cancel_requested=True,
            finished_at=timezone.now(),
            stage="cancelled",
            error=f"cancelled by {who} before it started",
            error_code="cancelled",
        )
    )


def _revoke(job: TrainingJob) -> None:
    if not job.celery_task_id:
        return
    try:
        current_app.control.revoke(job.celery_task_id)
    except Exception:  # the claim refuses a cancelled job anyway; the revoke only saves a delivery
        logger.warning("training.revoke_failed job=%s task=%s", job.pk, job.celery_task_id, exc_info=True)


def active_job_for(model_name: str) -> TrainingJob | None:
    return TrainingJob.objects.filter(model_name=model_name, status__in=TrainingJob.ACTIVE_STATUSES).first()


def job_metrics():
    """modelyard_training_jobs{status}, read at each scrape (registered in apps.py): every status, 0s too."""
    counts = dict(TrainingJob.objects.order_by().values_list("status").annotate(n=Count("id")))
    yield metrics.TRAINING_JOBS.family({(status,): counts.get(status, 0) for status in Status.values})
