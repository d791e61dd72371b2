"""A trainer killed with SIGKILL, its whole process group at once, mid-epoch: the job ends failed
(the reaper's verdict; jobs are not re-run by themselves), the registry is unchanged, and the
message the broker delivers again to the next worker registers no second version.

The test runs its own trainer on a queue of its own, so the session's worker cannot take the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import current_app

from backend.registry.models import ModelVersion
from backend.training import reaper
from backend.training.models import TrainingJob
from tests.factories import TrainingJobFactory
from tests.helpers import wait_until
from tests.web import database_url as test_database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

ROOT = Path(__file__).resolve().parents[3]
TINY = {"imgsz": 64, "batch": 8, "plots": False, "epochs": 300, "data": {"count": 24, "imgsz": 64, "seed": 5}}


def trainer(queue: str, log: Path, database_url: str) -> subprocess.Popen:
    """`celery worker` as the Procfile's trainer runs it, in a process group of its own; Redis hands an
    unacknowledged message to another consumer after 3 s (the visibility timeout)."""
    env = {**os.environ, "DATABASE_URL": database_url, "CELERY_VISIBILITY_TIMEOUT": "3", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "celery", "-A", "backend", "worker", "--queues", queue, "--concurrency", "1",
        "--max-tasks-per-child", "1", "--pool", "prefork", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--hostname", f"{queue}@%h",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def test_a_trainer_killed_mid_epoch_fails_its_job_and_registers_nothing(tmp_path, unique_name):
    queue = f"training-{uuid.uuid4().hex[:8]}"
    database_url = test_database_url()
    job = TrainingJobFactory(kind="detection", model_name=unique_name, dataset="synthetic:shapes", params=TINY)
    task_id = str(uuid.uuid4())
    TrainingJob.objects.filter(pk=job.pk).update(celery_task_id=task_id)
    first = trainer(queue, tmp_path / "first.log", database_url)
    try:
        current_app.send_task("training.run_job", kwargs={"job_id": job.pk}, task_id=task_id, queue=queue)

        def training():
            job.refresh_from_db()
            return job.status == "running" and job.epoch >= 1

        wait_until(training, timeout=240, interval=0.5, what="the first epoch")
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool child, with no goodbye
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)

    job.refresh_from_db()
    assert job.status == "running"  # nobody is left to say otherwise...
    result = reaper.reap_stale_jobs(worker_check_after=timedelta(0), broker_task_ids=None)
    assert result.failed == [job.pk]  # ...until the reaper finds its worker gone
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "worker_lost", (job.error_code, job.error)
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()

    # The next worker gets the unacknowledged message again: the claim refuses it, nothing is trained.
    second = trainer(queue, tmp_path / "second.log", database_url)
    try:
        log = tmp_path / "second.log"
        wait_until(lambda: "training.claim_skipped" in log.read_text(), timeout=120, what="the redelivery")
        time.sleep(1)
    finally:
        os.killpg(second.pid, signal.SIGKILL)
        second.wait(timeout=30)
    job.refresh_from_db()
    assert job.status == "failed" and job.celery_task_id == task_id
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()
