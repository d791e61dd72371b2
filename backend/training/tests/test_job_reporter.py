"""The JobReporter that runs beside a trainer: progress into the row at a bounded rate, heartbeats
from its own thread, and a cancel seen within a poll interval (rows committed: the thread has its
own database connection)."""

import logging

import pytest
from django.utils import timezone

from backend.training import runner, services
from backend.training.models import TrainingJob
from mlops.exceptions import TrainingCancelled
from tests.factories import TrainingJobFactory
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def running_job():
    return TrainingJobFactory(
        kind="detection", model_name="reporter", running=True, since=timezone.now() - timezone.timedelta(minutes=1)
    )


@pytest.fixture
def fast_monitor(monkeypatch):
    monkeypatch.setattr(runner, "CANCEL_POLL_S", 0.05)
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.1)


def test_reporter_heartbeats_and_sees_a_cancel(running_job, fast_monitor):
    before = running_job.heartbeat_at
    with runner.JobReporter(running_job.pk) as reporter:
        logging.getLogger("ultralytics").info("\x1b[34m\x1b[1mtrain:\x1b[0m scanning labels")
        wait_until(
            lambda: TrainingJob.objects.get(pk=running_job.pk).heartbeat_at > before, timeout=10, what="a heartbeat"
        )
        assert not reporter.should_stop()
        services.cancel_job(running_job)
        wait_until(reporter.should_stop, timeout=10, what="the cancel to reach the trainer")
        with pytest.raises(TrainingCancelled):
            reporter.on_stage("exporting")  # between steps, a cancel stops the job too
    job = TrainingJob.objects.get(pk=running_job.pk)
    assert "train: scanning labels" in job.log_tail  # Ultralytics' lines, without terminal colours
    assert "\x1b" not in job.log_tail


def test_progress_writes_are_throttled_but_the_history_is_complete(running_job, monkeypatch):
    monkeypatch.setattr(runner, "FLUSH_INTERVAL_S", 3600)
    with runner.JobReporter(running_job.pk) as reporter:
        for epoch in range(1, 6):
            reporter.on_epoch(epoch, 5, {"train/box_loss": 1.0 / epoch, "mAP50": epoch / 10, "note": "text"})
            job = TrainingJob.objects.get(pk=running_job.pk)
            if epoch == 1:
                assert (job.epoch, job.progress) == (1, 20.0)  # the first epoch shows at once
            elif epoch < 5:
                assert job.epoch == 1  # then at most one write per FLUSH_INTERVAL_S
    job = TrainingJob.objects.get(pk=running_job.pk)
    assert (job.epoch, job.epochs, job.progress) == (5, 5, 100.0)  # the last epoch always lands
    assert [point["epoch"] for point in job.history] == [1, 2, 3, 4, 5]
    assert job.metrics == {"train/box_loss": 0.2, "mAP50": 0.5}  # numbers only
