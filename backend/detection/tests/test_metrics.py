"""Detections move their series on /metrics: predictions, latency, classes, and the errors answered."""

from __future__ import annotations

import io
import zipfile
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.helpers import Scrape, wait_until
from tests.support import image_bytes, synthetic_photo, ultralytics_asset

pytestmark = [pytest.mark.django_db(transaction=True)]


def upload(client: APIClient, data: bytes, url: str = "/api/v1/detections/", field: str = "image", **params):
    return client.post(url, {field: SimpleUploadedFile("image.jpg", data), **params})


def moved(before: Scrape, after: Scrape, name: str, **labels) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_each_detection_counts_once_with_its_latency_and_classes(serve_detector, unique_name):
    version = serve_detector(0)
    client = APIClient()
    bus = ultralytics_asset("bus.jpg").read_bytes()
    upload(client, bus)  # the first request loads the model
    before = Scrape(client)

    bodies = [upload(client, bus, conf=0.001, max_det=50).json(), upload(client, bus, "/predict", "file").json()]

    after = Scrape(client)
    series = {"model": unique_name, "version": str(version.version), "kind": "detection"}
    assert moved(before, after, "modelyard_predictions_total", **series) == 2
    assert moved(before, after, "modelyard_prediction_latency_seconds_count", **series) == 2
    assert moved(before, after, "modelyard_inference_seconds_count", **series) == 2
    latency = moved(before, after, "modelyard_prediction_latency_seconds_sum", **series)
    assert latency == pytest.approx(sum(body["latency_ms"] for body in bodies) / 1000, rel=1e-3)
    assert 0 < moved(before, after, "modelyard_inference_seconds_sum", **series) <= latency
    classes = Counter(box["class_name"] for body in bodies for box in body["boxes"])
    assert classes, "the detector found nothing to count"
    for class_name, count in classes.items():
        labels = {"model": unique_name, "version": str(version.version), "class_name": class_name}
        assert moved(before, after, "modelyard_predicted_class_total", **labels) == count


def test_rejected_uploads_count_an_error_with_the_code_of_the_answer(serve_detector, unique_name):
    serve_detector(0)
    client = APIClient()
    before = Scrape(client)

    not_an_image = upload(client, b"not a picture")
    no_file = client.post("/api/v1/detections/", {"conf": "0.5"})
    unknown_model = upload(client, image_bytes(synthetic_photo(32, 32)), model="made-up-model")

    after = Scrape(client)
    codes = [response.json()["error"]["code"] for response in (not_an_image, no_file, unknown_model)]
    assert [response.status_code for response in (not_an_image, no_file, unknown_model)] == [400, 400, 404]
    errors = "modelyard_prediction_errors_total"
    assert moved(before, after, errors, model=unique_name, kind="detection", code=codes[0]) == 1
    assert (
        moved(before, after, errors, model="unknown", kind="detection", code="validation_error") == 1
    )  # before a model
    assert moved(before, after, errors, model="unknown", kind="detection", code=codes[2]) == 1  # no made-up series
    assert not any(labels.get("model") == "made-up-model" for labels in after.series(errors))


def test_listing_detections_is_not_a_prediction_error(serve_detector):
    client = APIClient()
    before = Scrape(client)
    assert client.get("/api/v1/detections/").status_code == 401
    after = Scrape(client)
    assert (
        moved(
            before,
            after,
            "modelyard_prediction_errors_total",
            model="unknown",
            kind="detection",
            code="not_authenticated",
        )
        == 0
    )


@pytest.mark.worker
def test_a_batch_on_the_celery_worker_reports_to_the_same_metrics(serve_detector, unique_name, celery_worker_process):
    """The worker writes into the multiprocess directory this process reads: one /metrics for both."""
    version = serve_detector(0)
    client = APIClient()
    entries = {f"p{i}.png": image_bytes(synthetic_photo(48, 40, seed=i)) for i in range(2)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in {**entries, "broken.png": b"not a picture"}.items():  # a zip's entries fail one by one
            archive.writestr(name, data)
    files = [SimpleUploadedFile("photos.zip", buffer.getvalue())]
    before = Scrape(client)

    created = client.post("/api/v1/batches/", {"files": files}, format="multipart").json()
    wait_until(
        lambda: client.get(f"/api/v1/batches/{created['id']}/").json()["status"] == "succeeded",
        timeout=120,
        what="the batch to finish",
    )

    after = Scrape(client)
    series = {"model": unique_name, "version": str(version.version), "kind": "detection"}
    assert moved(before, after, "modelyard_predictions_total", **series) == 2
    errors = {"model": unique_name, "kind": "detection", "code": "invalid_image"}
    assert moved(before, after, "modelyard_prediction_errors_total", **errors) == 1
