"""GET /metrics: who may read it, what it holds (ours and Django's, each once), the gauges read at
scrape time, and values written by other processes (multiprocess mode)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from backend.core import metrics
from tests.factories import TrainingJobFactory
from tests.helpers import Scrape

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


def test_metrics_are_prometheus_text_with_ours_and_djangos_each_once(client):
    client.get("/health")  # a request and a few queries for django-prometheus to count

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    declared = re.findall(r"^# TYPE (\S+) ", response.content.decode(), flags=re.MULTILINE)
    assert len(declared) == len(set(declared)), "a family is exported twice"
    scrape = Scrape(client)
    names = {family.name for family in scrape.families}
    assert "modelyard_training_jobs" in names
    assert scrape.value("django_http_requests_total_by_method_total", method="GET") >= 1
    assert scrape.value("django_db_execute_total", alias="default", vendor=connection.vendor) >= 1
    assert (
        scrape.value(
            "django_http_responses_total_by_status_view_method_total", status="200", view="health", method="GET"
        )
        >= 1
    )


@pytest.mark.parametrize(
    ("address", "headers", "allowed"),
    [
        ("127.0.0.1", {}, True),
        ("127.8.9.10", {}, True),
        ("::1", {}, True),
        ("::ffff:127.0.0.1", {}, True),  # IPv4 on a dual-stack socket
        ("203.0.113.7", {}, False),
        ("10.0.0.5", {}, False),
        ("127.0.0.1", {"HTTP_X_FORWARDED_FOR": "203.0.113.7"}, False),  # a local proxy forwarding someone else
        ("127.0.0.1", {"HTTP_FORWARDED": "for=203.0.113.7"}, False),
    ],
)
def test_only_the_allowed_networks_may_scrape_without_a_token(address, headers, allowed):
    response = Client(REMOTE_ADDR=address).get("/metrics", **headers)

    if allowed:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "permission_denied"


def test_the_token_admits_any_address_and_an_empty_allow_list_requires_it(settings):
    settings.METRICS_TOKEN = "s3cret-token"
    outside = Client(REMOTE_ADDR="203.0.113.7")
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert outside.get("/metrics").status_code == 403

    settings.METRICS_ALLOW = []
    local = Client(REMOTE_ADDR="127.0.0.1")
    assert local.get("/metrics").status_code == 403
    assert local.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_no_token_configured_admits_no_bearer(settings):
    settings.METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="203.0.113.7").get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_training_jobs_are_counted_by_status_at_scrape_time(client):
    before = Scrape(client)
    TrainingJobFactory.create_batch(2)
    TrainingJobFactory(running=True)

    after = Scrape(client)

    def moved(status: str) -> float:
        return after.value("modelyard_training_jobs", status=status) - before.value(
            "modelyard_training_jobs", status=status
        )

    assert (moved("queued"), moved("running"), moved("succeeded")) == (2, 1, 0)
    assert {labels["status"] for labels in after.series("modelyard_training_jobs")} == {
        "queued", "running", "succeeded", "failed", "cancelled"
    }  # fmt: skip


def test_other_apps_add_collectors_and_a_failing_one_is_left_out(client, monkeypatch):
    monkeypatch.setattr(metrics, "_collectors", dict(metrics._collectors))
    drift = metrics.ScrapeGauge("modelyard_test_drift_share", "Share of drifted features.", ("model", "version"))

    def drift_share():
        yield drift.family({("shapes", "3"): 0.25})

    def broken():
        raise RuntimeError("the database is down")

    metrics.register_collector(drift_share)
    metrics.register_collector(broken)
    metrics.register_collector(drift_share)  # registering twice adds it once

    scrape = Scrape(client)

    assert scrape.series("modelyard_test_drift_share") == [{"model": "shapes", "version": "3"}]
    assert scrape.value("modelyard_test_drift_share", model="shapes", version="3") == 0.25
    assert scrape.has("modelyard_training_jobs", status="queued")


RECORD_IN_ANOTHER_PROCESS = """
import os, sys
import django
django.setup()
from backend.core import metrics
metrics.count_prediction_error(None, "detection", sys.argv[1])
metrics.record_serving_generation(sys.argv[2], 7)
print(os.getpid())
"""


def test_values_written_by_other_processes_are_merged_until_they_exit(client, settings, tmp_path):
    """What gunicorn's workers and Celery's processes do: write files, merged by whoever answers /metrics."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    settings.PROMETHEUS_MULTIPROC_DIR = str(directory)
    code, model = f"test_{uuid.uuid4().hex[:8]}", f"model-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    pids = []
    for _ in range(2):
        child = subprocess.run(
            [sys.executable, "-c", RECORD_IN_ANOTHER_PROCESS, code, model], cwd=ROOT, env=env, capture_output=True
        )
        assert child.returncode == 0, child.stderr.decode()[-2000:]
        pids.append(int(child.stdout.split()[-1]))

    scrape = Scrape(client)
    assert scrape.value("modelyard_prediction_errors_total", model="unknown", kind="detection", code=code) == 2
    assert scrape.value("modelyard_serving_generation", model=model) == 7

    for pid in pids:
        metrics.process_exited(pid)  # what gunicorn's child_exit and Celery's worker_process_shutdown do
    scrape = Scrape(client)
    assert not scrape.has("modelyard_serving_generation", model=model)  # only live processes serve
    assert scrape.value("modelyard_prediction_errors_total", model="unknown", kind="detection", code=code) == 2

    removed = metrics.remove_files_of_exited_processes()  # what the web server does when it starts
    assert {path.name for path in removed} == {f"counter_{pid}.db" for pid in pids}
    assert not Scrape(client).has("modelyard_prediction_errors_total", model="unknown", kind="detection", code=code)
