"""The stale-job reaper (`training.reap_stale_jobs`, every five minutes, and bootstrap_models):
fails running jobs whose worker died, re-sends or fails queued jobs whose message the broker lost.

It never fails a job on a guess: with no answer from the workers it judges by heartbeats alone,
and with a broker it cannot look into it leaves queued jobs alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from backend.registry.services import model_registry
from backend.training import broker
from backend.training.jobs import finish_failed
from backend.training.models import TrainingJob
from backend.training.services import enqueue_job

logger = logging.getLogger(__name__)

Status = TrainingJob.Status

# A queued job's message may be re-sent this many times before the job is failed.
MAX_ENQUEUES = 3
# A running job is only judged by its worker's answers once its heartbeat is this old: the
# heartbeat thread writes every HEARTBEAT_SECONDS, so a younger one proves the process is alive.
WORKER_CHECK_AFTER = timedelta(seconds=90)

_LOOK_UP = object()


@dataclass(frozen=True)
class ReapResult:
    failed: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"failed": self.failed, "requeued": self.requeued}


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
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.TRAINING_STALE_AFTER_SECONDS)
    result = ReapResult()
    _reap_running(result, now, stale_before, now - worker_check_after, workers)
    _reap_queued(result, stale_before, broker_task_ids)
    if result.failed or result.requeued:
        logger.warning("training.reaped failed=%s requeued=%s", result.failed, result.requeued)
    return result


def _reap_running(result: ReapResult, now: datetime, stale_before: datetime, quiet_before: datetime, workers) -> None:
    running = list(TrainingJob.objects.filter(status=Status.RUNNING, heartbeat_at__lt=quiet_before))
    if workers is _LOOK_UP:
        workers = broker.active_tasks_by_worker() if running else None
    for job in running:
        verdict = _dead_worker_verdict(job, now, stale_before, workers)
        if verdict is None:
            continue
        code, message = verdict
        if finish_failed(job.pk, message=message, code=code):
            result.failed.append(job.pk)
            _end_orphaned_run(job.mlflow_run_id)


def _dead_worker_verdict(job: TrainingJob, now: datetime, stale_before: datetime, workers) -> tuple[str, str] | None:
    """(error code, message) when the quiet job's worker is dead or gone; None while it may be alive."""
    silent_s = int((now - job.heartbeat_at).total_seconds())
    host = job.worker_hostname
    if job.heartbeat_at < stale_before:
        return "heartbeat_lost", f"no heartbeat from worker {host or '?'} for {silent_s}s: the worker died or hung"
    if workers is None or not host:
        return None
    if host not in workers:
        return "worker_lost", f"worker {host} is gone (no answer; last heartbeat {silent_s}s ago)"
    if job.celery_task_id not in workers[host]:
        return "worker_lost", (
            f"worker {host} is no longer running the job's task (its process died; last heartbeat {silent_s}s ago)"
        )
    return None


def _reap_queued(result: ReapResult, lost_before: datetime, broker_task_ids) -> None:
    queued = list(TrainingJob.objects.filter(status=Status.QUEUED, enqueued_at__lt=lost_before))
    if broker_task_ids is _LOOK_UP:
        broker_task_ids = broker.pending_task_ids() if queued else None
    if broker_task_ids is None:
        if queued:
            logger.info("training.reap_queued_skipped reason=broker_not_inspectable jobs=%s", len(queued))
        return
    for job in queued:
        if job.celery_task_id in broker_task_ids:
            continue
        if job.enqueue_count >= MAX_ENQUEUES:
            message = f"the broker lost the job's message {job.enqueue_count} times; no worker ever started it"
            if finish_failed(job.pk, message=message, code="message_lost", from_statuses=(Status.QUEUED,)):
                result.failed.append(job.pk)
        elif enqueue_job(job.pk):
            result.requeued.append(job.pk)


def _end_orphaned_run(run_id: str) -> None:
    """A worker that died left its MLflow run RUNNING: mark it FAILED like the job."""
    if not run_id:
        return
    try:
        client = model_registry().client
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="FAILED")
            client.set_tag(run_id, "modelyard.error", "the training's worker died (marked failed by the reaper)")
    except Exception:  # the job's state is what matters; MLflow may be down or the run gone
        logger.warning("training.orphaned_run_not_ended run=%s", run_id, exc_info=True)
