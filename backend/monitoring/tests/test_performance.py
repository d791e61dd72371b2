"""Performance roll-ups from the real prediction log, and the performance API."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from backend.detection.models import Detection
from backend.monitoring.models import PerformanceBucket
from backend.monitoring.services import performance
from backend.scoring.models import TabularPrediction
from tests.factories import UserFactory
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db(transaction=True)]  # the serving holder loads on its own connection


def staff_api() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory(staff=True))
    return client


@pytest.mark.postgres
def test_predictions_are_rolled_up_per_version_and_minute(serve_detector, serve_tabular, model_files, unique_name):
    tabular = serve_tabular(0)
    detector = serve_detector(0, name=f"{unique_name}-detector")
    client = APIClient()
    if timezone.now().second > 40:  # the requests below must fall in one minute's bucket
        time.sleep(61 - timezone.now().second)
    for seed in range(3):
        upload = SimpleUploadedFile("a.png", image_bytes(synthetic_photo(seed=seed)), "image/png")
        response = client.post("/api/v1/detections/", {"image": upload, "model": detector.model.name})
        assert response.status_code == 201, response.content
    # A rejected upload has no prediction row: its error is kept for the roll-up all the same.
    junk = SimpleUploadedFile("notes.png", b"not an image at all", "image/png")
    rejected = client.post("/api/v1/detections/", {"image": junk, "model": detector.model.name})
    assert rejected.status_code == 400
    code = rejected.json()["error"]["code"]
    schema = model_files["tabular"][0].feature_schema
    records = [{f["name"]: f["mean"] for f in schema}] * 4
    assert client.post("/api/v1/tabular/predictions/", {"records": records}, format="json").status_code == 200

    # Everything above happened in the current minute: the roll-up of the next minute includes it.
    written = performance.roll_up(now=timezone.now() + timedelta(minutes=1))
    assert written[60] == 2
    rows = {row.version_id: row for row in PerformanceBucket.objects.filter(seconds=60)}
    detections = rows[detector.pk]
    assert (detections.requests, detections.predictions) == (3, 3)
    latencies = sorted(Detection.objects.values_list("latency_ms", flat=True))
    assert detections.latency_p50_ms == pytest.approx(latencies[1])
    assert sum(detections.confidence_histogram) == 3
    assert (detections.errors, detections.errors_by_code) == (1, {code: 1})
    assert detections.error_rate == pytest.approx(1 / 4)
    scored = rows[tabular.pk]
    assert (scored.requests, scored.predictions) == (1, 4)
    labels = TabularPrediction.objects.values_list("label", flat=True)
    assert scored.class_counts == {labels[0]: 4}
    assert scored.latency_p99_ms == pytest.approx(TabularPrediction.objects.first().latency_ms)

    # Idempotent: a second run re-rolls the last bucket and writes no duplicate.
    performance.roll_up(now=timezone.now() + timedelta(minutes=1))
    assert PerformanceBucket.objects.filter(seconds=60).count() == 2

    body = staff_api().get(f"/api/v1/models/{detector.model.name}/performance/").json()
    assert body["bucket"] == "minute" and len(body["buckets"]) == 1
    assert body["buckets"][0]["requests"] == 3 and body["buckets"][0]["label"] == "v1.0"


def test_performance_api_checks_its_parameters(serve_tabular):
    name = serve_tabular(0).model.name
    api = staff_api()
    assert api.get(f"/api/v1/models/{name}/performance/", {"bucket": "week"}).status_code == 400
    assert api.get(f"/api/v1/models/{name}/performance/", {"since": "yesterday"}).status_code == 400
    assert api.get("/api/v1/models/no-such-model/performance/").json()["error"]["code"] == "model_not_found"
    assert APIClient().get(f"/api/v1/models/{name}/performance/").status_code in (401, 403)
