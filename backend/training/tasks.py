"""Celery tasks of training jobs. Routed to the `training` queue by CELERY_TASK_ROUTES ("training.*"),
which the dedicated trainer worker consumes one task per child process (--max-tasks-per-child 1):
what a training leaves in its process (Ultralytics' mlflow.autolog(), torch threads, memory) dies
with the child. The reaper is the exception: it runs on the default queue, so that a busy or dead
trainer cannot hold it up.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from backend.training import reaper, runner
from backend.training.services import RUN_JOB_TASK

logger = logging.getLogger(__name__)


# No retries: a failed training is recorded on the job (with its traceback) for a person to read,
# not run again blindly. acks_late + reject_on_worker_lost put the message back when the worker
# process dies; the claim then refuses to run the job twice and the reaper fails it. The time
# limits stay below the broker's visibility timeout, so Redis never redelivers a running task.
@shared_task(
    name=RUN_JOB_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
)
def run_job(self, *, job_id: int) -> str:
    return runner.execute_job(job_id, task_id=self.request.id or "", hostname=self.request.hostname or "")


# Runs every 5 minutes from the beat schedule; idempotent, so a lost or doubled run is harmless.
@shared_task(name="training.reap_stale_jobs")
def reap_stale_jobs() -> dict:
    return reaper.reap_stale_jobs().to_dict()
