"""Batches on a real Celery worker, image retention, and feedback exported as YOLO labels."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from backend.detection.models import Batch, Detection
from backend.detection.tasks import purge_old_images
from tests.factories import UserFactory
from tests.helpers import wait_until
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db(transaction=True)]


def detect(client: APIClient, data: bytes, name: str = "x.png", **params) -> dict:
    response = client.post("/api/v1/detections/", {"image": SimpleUploadedFile(name, data), **params})
    assert response.status_code == 201, response.content
    return response.json()


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.worker
def test_batch_of_a_zip_runs_on_the_worker_with_results_as_json_and_csv(
    serve_trained, trained_detector, celery_worker_process
):
    version = serve_trained()
    samples = {f"shapes/{path.name}": path.read_bytes() for path in trained_detector.samples[:3]}
    archive = zipped({**samples, "broken.jpg": b"not a picture", "readme.txt": b"ignored", "__MACOSX/._x.png": b""})
    client = APIClient()

    created = client.post(
        "/api/v1/batches/", {"files": [SimpleUploadedFile("images.zip", archive)], "conf": "0.05"}, format="multipart"
    )

    assert created.status_code == 202, created.content
    batch_id = created.json()["id"]
    assert created.json()["total"] == 4 and created.json()["status"] == "pending"
    final = wait_until(
        lambda: (
            (body := client.get(f"/api/v1/batches/{batch_id}/").json())["status"] in ("succeeded", "failed") and body
        ),
        timeout=120,
        what="the batch to finish",
    )
    assert final["status"] == "succeeded", final
    assert (final["processed"], final["failed"], final["progress"]) == (4, 1, 1.0)

    results = client.get(f"/api/v1/batches/{batch_id}/results.json").json()["results"]
    assert [r["filename"] for r in results] == [*samples, "broken.jpg"]
    assert results[-1]["status"] == "failed" and results[-1]["error"]["code"] == "invalid_image"
    for result, data in zip(results[:3], samples.values(), strict=True):
        assert result["status"] == "done"
        assert result["model"] == {"name": version.model.name, "version": version.version, "label": "v1.0"}
        assert result["boxes"] == detect(client, data, conf="0.05")["boxes"]  # the same answer as one upload

    csv_response = client.get(f"/api/v1/batches/{batch_id}/results.csv")
    assert csv_response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_response.content.decode())))
    expected_rows = sum(max(1, len(r["boxes"])) for r in results[:3]) + 1
    assert len(rows) == expected_rows
    assert rows[-1]["filename"] == "broken.jpg" and rows[-1]["error"].startswith("invalid_image")
    boxed = [row for row in rows if row["class_name"]]
    assert all(float(row["confidence"]) >= 0.05 and float(row["x2"]) > float(row["x1"]) for row in boxed)

    batch = Batch.objects.get(pk=batch_id)
    assert Detection.objects.filter(batch=batch, source="batch").count() == 3
    assert not any(default_storage.exists(item["path"]) for item in batch.inputs)  # inputs cleaned up


@pytest.mark.worker
def test_batch_of_several_files(serve_detector, celery_worker_process):
    serve_detector(0)
    files = [SimpleUploadedFile(f"p{i}.png", image_bytes(synthetic_photo(48, 40, seed=i))) for i in range(2)]
    client = APIClient()
    created = client.post("/api/v1/batches/", {"files": files}, format="multipart").json()
    final = wait_until(
        lambda: (body := client.get(f"/api/v1/batches/{created['id']}/").json())["status"] == "succeeded" and body,
        timeout=120,
        what="the batch to finish",
    )
    assert (final["total"], final["processed"], final["failed"]) == (2, 2, 0)


def test_batch_input_is_checked_before_anything_runs(serve_detector):
    serve_detector(0)
    client = APIClient()
    empty_zip = client.post(
        "/api/v1/batches/", {"files": [SimpleUploadedFile("a.zip", zipped({"a.txt": b"x"}))]}, format="multipart"
    )
    assert empty_zip.status_code == 400 and empty_zip.json()["error"]["code"] == "no_images"
    nothing = client.post("/api/v1/batches/", {}, format="multipart")
    assert nothing.status_code == 400 and "files" in nothing.json()["error"]["fields"]
    unknown = client.post(
        "/api/v1/batches/",
        {"files": [SimpleUploadedFile("a.png", image_bytes(synthetic_photo(8, 8)))], "model": "nope"},
        format="multipart",
    )
    assert unknown.status_code == 404
    assert Batch.objects.count() == 0


def test_old_images_are_purged_and_rows_stay(serve_detector):
    serve_detector(0)
    client = APIClient()
    old = detect(client, image_bytes(synthetic_photo(64, 64, seed=1)))
    recent = detect(client, image_bytes(synthetic_photo(64, 64, seed=2)))
    assert client.get(f"/api/v1/detections/{old['id']}/thumbnail.jpg").status_code == 200
    Detection.objects.filter(pk=old["id"]).update(created_at=timezone.now() - timedelta(days=31))
    old_files = Detection.objects.filter(pk=old["id"]).values_list("image", "thumbnail").get()

    assert purge_old_images() == 1

    gone = Detection.objects.get(pk=old["id"])
    assert gone.image_deleted_at is not None and not gone.has_image
    assert all(old_files) and not any(default_storage.exists(name) for name in old_files)
    assert gone.boxes == old["boxes"] and gone.features  # the row stays for monitoring
    for picture in ("annotated.png", "heatmap.png", "thumbnail.jpg"):
        response = client.get(f"/api/v1/detections/{old['id']}/{picture}")
        assert response.status_code == 410 and response.json()["error"]["code"] == "image_deleted"
    assert client.get(f"/api/v1/detections/{old['id']}/").json()["image_stored"] is False
    assert client.get(f"/api/v1/detections/{recent['id']}/thumbnail.jpg").status_code == 200
    assert purge_old_images() == 0


def test_feedback_is_exported_as_yolo_labels(serve_trained, trained_detector, tmp_path, unique_name):
    serve_trained()
    client = APIClient()
    answers = [detect(client, path.read_bytes(), path.name, conf="0.01") for path in trained_detector.samples[:4]]
    with_boxes = [a for a in answers if len(a["boxes"]) >= 1]
    assert len(with_boxes) >= 2
    first, second = with_boxes[:2]
    unjudged = [a for a in answers if a not in (first, second)]

    reviewer = APIClient()  # labels come from trusted reviewers (staff here); anonymous verdicts are left out
    reviewer.force_authenticate(UserFactory(username="reviewer", staff=True))

    def feedback(detection, **payload):
        url = f"/api/v1/detections/{detection['id']}/feedback/"
        assert reviewer.post(url, payload, format="json").status_code == 201

    # First image: right at threshold 0 (all boxes kept), but box 0 is really a triangle.
    feedback(first, verdict="correct", min_confidence=0.0)
    feedback(first, verdict="wrong", box_index=0, correct_class="triangle")
    # Second image: judged wrong as a whole: not exported.
    feedback(second, verdict="wrong")

    out = tmp_path / "export"
    call_command("export_feedback", unique_name, "--out", str(out), stdout=io.StringIO())

    labels = sorted((out / "labels").glob("*.txt"))
    assert [p.stem for p in labels] == [first["id"].replace("-", "")]
    lines = labels[0].read_text().splitlines()
    assert len(lines) == len(first["boxes"])
    assert lines[0].split()[0] == "2"
    _, cx, cy, w, h = (float(v) for v in lines[0].split())
    x1, y1, x2, y2 = first["boxes"][0]["xyxyn"]
    assert (cx, cy, w, h) == pytest.approx(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), abs=1e-5)
    image = Image.open(out / "images" / f"{labels[0].stem}.jpg")
    assert image.size == (first["image"]["width"], first["image"]["height"])
    assert 'names: ["circle", "square", "triangle"]' in (out / "data.yaml").read_text()
    assert not any((out / "labels" / f"{a['id'].replace('-', '')}.txt").exists() for a in unjudged)
    assert Path(out / "manifest.json").exists()
