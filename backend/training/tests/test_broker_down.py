"""With the broker down, starting a job answers 503 with a clear message and leaves a failed record,
never a job queued forever; predictions are answered meanwhile."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from rest_framework.test import APIClient

from backend import celery_app
from backend.training.models import TrainingJob
from tests.services import free_port

pytestmark = [pytest.mark.django_db(transaction=True)]


@contextmanager
def broker_down():
    """Point the Celery app at a port nothing listens on (the cache and the database stay up)."""
    before = celery_app.conf.broker_url
    _reconnect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        yield
    finally:
        _reconnect(before)


def _reconnect(url: str) -> None:
    """New pools for the new URL; the old URL's pools stay open in kombu's registry for the way back."""
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_a_job_started_without_a_broker_is_a_503_and_a_failed_record(admin_user, serve_tabular):
    version = serve_tabular(0)
    with broker_down():
        response, record = _start_and_predict(admin_user, version)
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "queue_unavailable" and "could not be started" in error["message"]
    job = TrainingJob.objects.get(pk=error["details"]["job"])
    assert job.status == "failed" and job.error_code == "broker_unavailable"
    assert record == 200


def _start_and_predict(admin_user, version):
    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.post("/api/v1/training-jobs/", {"kind": "tabular", "model_name": "broker-down"}, format="json")
    record = {"records": [{f["name"]: f["mean"] for f in version.model.feature_schema}]}
    return response, APIClient().post("/api/v1/tabular/predictions/", record, format="json").status_code
