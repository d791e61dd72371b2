"""Batches of classifications: a zip run on a real Celery worker, its results as JSON and CSV, the
refusals shared with detection's batches, and the reaper."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from backend.classification.models import Classification, ClassificationBatch
from backend.classification.services import batches
from backend.serving.sources import Source
from mlops.tests.classifier_support import asset
from tests.helpers import wait_until
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db(transaction=True)]

URL = "/api/v1/classifications/batches/"
CLASSES = ["cat", "dog", "bird"]


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def post(client: APIClient, files: dict[str, bytes], **params):
    uploads = [SimpleUploadedFile(name, data) for name, data in files.items()]
    return client.post(URL, {"files": uploads, **params}, format="multipart")


@pytest.mark.worker
def test_a_zip_is_classified_on_the_worker_with_results_as_json_and_csv(serve_classifier, celery_worker_process):
    version = serve_classifier()
    photos = {"photos/bus.jpg": asset("bus.jpg").read_bytes(), "photos/zidane.jpg": asset("zidane.jpg").read_bytes()}
    archive = zipped({**photos, "broken.jpg": b"not a picture", "notes.txt": b"ignored"})
    client = APIClient()

    created = post(client, {"photos.zip": archive}, top_k="2")
    assert created.status_code == 202, created.content
    batch_id = created.json()["id"]
    assert (created.json()["total"], created.json()["top_k"]) == (3, 2)
    final = wait_until(
        lambda: (body := client.get(f"{URL}{batch_id}/").json())["status"] in ("succeeded", "failed") and body,
        timeout=120,
        what="the batch to finish",
    )
    assert final["status"] == "succeeded", final
    assert (final["processed"], final["failed"], final["progress"]) == (3, 1, 1.0)

    results = client.get(f"{URL}{batch_id}/results.json").json()["results"]
    assert [r["filename"] for r in results] == [*photos, "broken.jpg"]
    assert results[-1]["status"] == "failed" and results[-1]["error"]["code"] == "invalid_image"
    for result, data in zip(results[:2], photos.values(), strict=True):
        single = client.post("/api/v1/classifications/", {"image": SimpleUploadedFile("one.jpg", data), "top_k": "2"})
        assert result["status"] == "done"
        assert result["model"] == {"name": version.model.name, "version": version.version, "label": "v1.0"}
        assert result["classes"] == single.json()["classes"]  # the same answer as one upload
        assert result["prediction"] == result["classes"][0]["class_name"] in CLASSES
        row = Classification.objects.get(pk=result["classification_id"])
        assert (row.source, str(row.batch_id), row.top_k) == (Source.BATCH, batch_id, 2)

    rows = list(csv.DictReader(io.StringIO(client.get(f"{URL}{batch_id}/results.csv").content.decode())))
    assert len(rows) == 2 * 2 + 1  # two listed classes per photo, one row for the broken file
    assert [(r["filename"], r["rank"]) for r in rows[:2]] == [("photos/bus.jpg", "1"), ("photos/bus.jpg", "2")]
    assert float(rows[0]["probability"]) == pytest.approx(results[0]["classes"][0]["probability"])
    assert rows[-1]["error"].startswith("invalid_image:")


def test_a_batch_for_a_detector_or_without_images_is_refused(serve_classifier, serve_detector, unique_name):
    serve_classifier()
    detector = serve_detector(0, name=f"{unique_name}-detector")
    client = APIClient()
    photo = image_bytes(synthetic_photo(32, 32))
    wrong = post(client, {"a.png": photo}, model=detector.model.name)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_model_kind"
    empty = post(client, {"empty.zip": zipped({"readme.txt": b"no pictures"})})
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "no_images"
    too_many = post(client, {"a.png": photo}, top_k="4")
    assert too_many.status_code == 400 and too_many.json()["error"]["details"]["field"] == "top_k"
    assert ClassificationBatch.objects.count() == 0


def test_the_reaper_resends_lost_batches_and_fails_abandoned_ones(serve_classifier, eager):
    serve_classifier()
    client = APIClient()
    photo = image_bytes(synthetic_photo(32, 32))
    assert post(client, {"a.png": photo, "b.png": photo}).status_code == 202  # eager: already ran
    done = ClassificationBatch.objects.get()
    assert done.status == "succeeded" and done.classifications.count() == 2
    lost = ClassificationBatch.objects.create(
        model_name=done.model_name, created_at=timezone.now() - timedelta(minutes=20)
    )
    stalled = ClassificationBatch.objects.create(
        model_name=done.model_name, status="running", started_at=timezone.now() - timedelta(hours=7)
    )
    abandoned = ClassificationBatch.objects.create(
        model_name=done.model_name, created_at=timezone.now() - timedelta(hours=3)
    )
    assert batches.BATCHES.reap() == {"resent": 1, "failed": 2}
    for batch in (lost, stalled, abandoned):
        batch.refresh_from_db()
    assert lost.status == "succeeded"  # sent again, and run (eagerly) from the start
    assert stalled.status == "failed" and "stalled" in stalled.error
    assert abandoned.status == "failed" and "lost" in abandoned.error
