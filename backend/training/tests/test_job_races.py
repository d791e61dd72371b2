"""Races the database must settle (also run on PostgreSQL, where they are real): duplicate deliveries
claiming one job, and two `make run`s bootstrapping at once."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from backend.training import jobs
from backend.training.models import TrainingJob
from tests.factories import TrainingJobFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def race(count: int, work) -> list:
    """Run `work(i)` in `count` threads released together; results (or exceptions) in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001  (the race's loser raises; the test inspects it)
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_deliveries_claim_a_job_once():
    job = TrainingJobFactory(model_name="raced")
    results = race(6, lambda i: jobs.claim_job(job.pk, task_id=f"t-{i}", hostname=f"worker-{i}@h"))
    winners = [result for result in results if isinstance(result, TrainingJob)]
    assert len(winners) == 1, results
    assert all(result is None for result in results if result not in winners)
    job.refresh_from_db()
    assert (job.status, job.worker_hostname) == ("running", winners[0].worker_hostname)


def test_concurrent_bootstraps_queue_one_job():
    """The check-then-create of bootstrap_models can race; the partial unique constraint cannot."""

    def create(index: int) -> TrainingJob:
        with transaction.atomic():
            return TrainingJob.objects.create(
                kind="tabular", model_name="raced-bootstrap", dataset="sklearn:breast_cancer",
                dedupe_key="bootstrap:raced-bootstrap",
            )  # fmt: skip

    results = race(4, create)
    assert sum(isinstance(result, TrainingJob) for result in results) == 1, results
    assert sum(isinstance(result, IntegrityError) for result in results) == 3, results
    # Once that job ends, the next bootstrap may queue another.
    TrainingJob.objects.filter(dedupe_key="bootstrap:raced-bootstrap").update(status="failed")
    assert create(0).status == "queued"
