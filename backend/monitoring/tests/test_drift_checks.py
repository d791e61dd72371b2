"""Drift checks through the real API, a real Celery worker and the real beat task.

Predictions are posted to the prediction endpoints like clients do; the checks run on the worker
(the `monitoring` queue) and their reports are read back through the monitoring API.
"""

from __future__ import annotations

import gzip
import io

import pytest
from django.core.management import call_command
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from backend.monitoring.models import DriftReport, DriftSettings
from backend.monitoring.tasks import check_drift, check_drift_of_production_models
from backend.registry.models import RegisteredModel
from tests.factories import UserFactory, VersionFactory
from tests.helpers import post_records, stream_from, wait_until
from tests.support import image_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

TASK_TIMEOUT = 180


def run_on_worker(model_name: str) -> DriftReport:
    result = check_drift.delay(model_name=model_name).get(timeout=TASK_TIMEOUT)
    return DriftReport.objects.get(pk=result["report"])


def staff_api() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory(staff=True))
    return client


# -- tabular --------------------------------------------------------------------------------------
@pytest.mark.postgres  # windows are read in bulk from JSON columns, which each database stores its own way
def test_tabular_stream_is_flagged_when_shifted_and_not_otherwise(
    celery_worker_process, tabular_with_reference, breast_cancer
):
    name = tabular_with_reference.model.name
    post_records(stream_from(breast_cancer, 200, seed=1))
    unshifted = run_on_worker(name)
    assert unshifted.status == "ok", unshifted.message
    assert unshifted.reference_source == "training reference"
    assert unshifted.current_size == 200 and unshifted.reference_size == 300

    shifted = stream_from(breast_cancer, 200, seed=2)
    shifted = shifted * 1.6 + shifted.std() * 0.5  # scaled and offset
    post_records(shifted)
    report = run_on_worker(name)
    assert report.status == "drift", report.message
    assert report.dataset_drift and report.drifted_share >= 0.5
    assert "mean radius" in report.drifted_columns()
    assert report.html.name.endswith(".html.gz")
    # The check before it found no drift and is superseded: its HTML went, its row stays.
    unshifted.refresh_from_db()
    assert not unshifted.html and unshifted.columns


@pytest.mark.postgres
def test_too_few_predictions_give_not_enough_data(celery_worker_process, tabular_with_reference, breast_cancer):
    post_records(stream_from(breast_cancer, 40, seed=3))
    report = run_on_worker(tabular_with_reference.model.name)
    assert report.status == "not_enough_data"
    assert "40" in report.message
    assert not report.html


def test_reports_through_the_api_and_the_html_opens(celery_worker_process, tabular_with_reference, breast_cancer):
    name = tabular_with_reference.model.name
    post_records(stream_from(breast_cancer, 200, seed=4) * 2.0)
    report = run_on_worker(name)
    api = staff_api()
    listed = api.get("/api/v1/drift-reports/", {"model": name, "drifted": "true"}).json()
    assert [item["id"] for item in listed["results"]] == [report.pk]
    assert api.get("/api/v1/drift-reports/", {"model": name, "drifted": "false"}).json()["results"] == []
    detail = api.get(f"/api/v1/drift-reports/{report.pk}/").json()
    assert detail["status"] == "drift" and detail["model"] == name and detail["columns"]
    html = api.get(detail["links"]["html"])
    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    assert b"<html" in html.content.lower()[:2000] and b"mean radius" in html.content
    zipped = api.get(detail["links"]["html"], HTTP_ACCEPT_ENCODING="gzip, br")
    assert zipped["Content-Encoding"] == "gzip" and gzip.decompress(zipped.content) == html.content
    # /metrics shows the latest check of the production version.
    page = Client().get("/metrics").content.decode()
    share = {
        (sample.labels["model"], sample.name): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if family.name in ("modelyard_drift_share", "modelyard_drift_detected")
    }
    assert share[(name, "modelyard_drift_share")] == pytest.approx(report.drifted_share)
    assert share[(name, "modelyard_drift_detected")] == 1.0
    # Monitoring data is staff-only; filters are checked.
    assert APIClient().get("/api/v1/drift-reports/").status_code in (401, 403)
    bad = api.get("/api/v1/drift-reports/", {"drifted": "maybe"})
    assert bad.status_code == 400 and "drifted" in bad.content.decode()


# -- detection ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shape_images(tmp_path_factory):
    """Synthetic shape images like the detector was trained on, and two shifted variants."""
    from PIL import Image, ImageEnhance

    from mlops.data.synthetic import ShapesSpec, generate_shapes

    def images(name: str, **spec) -> list[bytes]:
        folder = generate_shapes(tmp_path_factory.mktemp(name), ShapesSpec(imgsz=64, max_objects=2, **spec))
        return [path.read_bytes() for path in sorted((folder / "images").iterdir())]

    base = images("reference", count=150, seed=10)
    same = images("same", count=150, seed=11)
    bigger = images("bigger", count=150, seed=12, min_size=0.6, max_size=0.9)
    darker = []
    for data in images("darker", count=150, seed=13):
        with Image.open(io.BytesIO(data)) as opened:
            dark = ImageEnhance.Brightness(opened.convert("RGB")).enhance(0.35)
        darker.append(image_bytes(dark, "JPEG", quality=90))
    return {"reference": base, "same": same, "bigger": bigger, "darker": darker}


def detect(images: list[bytes]) -> None:
    client = Client()
    for index, data in enumerate(images):
        upload = io.BytesIO(data)
        upload.name = f"{index}.jpg"
        response = client.post("/api/v1/detections/", {"image": upload})
        assert response.status_code == 201, response.content


@pytest.fixture
def detector_without_reference(serve_trained):
    """The trained tiny detector, registered from files (no training reference) and promoted."""
    version = serve_trained()
    DriftSettings.objects.create(
        model=version.model, reference_predictions=150, window_predictions=150, min_samples=100
    )
    return version


@pytest.mark.postgres
def test_detector_reference_comes_from_its_first_predictions_and_shifts_are_flagged(
    celery_worker_process, detector_without_reference, shape_images
):
    name = detector_without_reference.model.name
    detect(shape_images["reference"][:60])
    early = run_on_worker(name)
    assert early.status == "not_enough_data"
    assert "first 150 production predictions" in early.reference_source and "60 so far" in early.message

    detect(shape_images["reference"][60:])
    detect(shape_images["same"])
    unshifted = run_on_worker(name)
    assert unshifted.status == "ok", unshifted.message
    assert "first 150 production predictions" in unshifted.reference_source
    assert unshifted.current_size == 150

    detect(shape_images["darker"])
    darker = run_on_worker(name)
    assert darker.status == "drift", darker.message
    assert {"brightness", "contrast"} & set(darker.drifted_columns())

    detect(shape_images["bigger"])
    bigger = run_on_worker(name)
    assert bigger.status == "drift", bigger.message
    assert {"box_area_share", "mean_confidence", "n_boxes", "sharpness"} & set(bigger.drifted_columns())


# -- schedules and the command --------------------------------------------------------------------
@pytest.mark.django_db  # not transactional: a transactional test's flush empties the migrations' rows
def test_default_schedules_are_rows_with_an_expiry():
    from django_celery_beat.models import PeriodicTask

    tasks = {task.name: task for task in PeriodicTask.objects.all()}
    for name in ("monitoring-check-drift", "registry-reconcile-aliases", "training-reap-stale-jobs"):
        assert name in tasks, sorted(tasks)
        assert tasks[name].crontab is not None and tasks[name].expire_seconds
    assert tasks["monitoring-check-drift"].task == "monitoring.check_drift_of_production_models"


@pytest.mark.postgres
def test_the_beat_task_checks_every_production_model(
    celery_worker_process, tabular_with_reference, breast_cancer, model_files
):
    unpromoted = f"{tabular_with_reference.model.name}-unpromoted"
    VersionFactory(name=unpromoted, kind="tabular", files=model_files["tabular"][1])
    post_records(stream_from(breast_cancer, 120, seed=5))
    before = DriftReport.objects.count()
    names = check_drift_of_production_models.delay().get(timeout=TASK_TIMEOUT)
    assert tabular_with_reference.model.name in names
    assert unpromoted not in names
    expected = RegisteredModel.objects.filter(versions__status="production").distinct().count()
    wait_until(
        lambda: DriftReport.objects.count() >= before + expected, timeout=TASK_TIMEOUT, what="the fanned-out checks"
    )
    report = DriftReport.objects.filter(model=tabular_with_reference.model).latest("created_at")
    assert report.trigger == "schedule" and report.status == "ok", report.message


def test_detect_drift_command_prints_the_summary(tabular_with_reference, breast_cancer):
    post_records(stream_from(breast_cancer, 150, seed=6))
    out = io.StringIO()
    call_command("detect_drift", tabular_with_reference.model.name, "--window", "150", stdout=out)
    text = out.getvalue()
    assert "no drift" in text and "training reference (300 rows)" in text and "mean radius" in text
    report = DriftReport.objects.latest("created_at")
    assert report.trigger == "command" and report.window == {"predictions": 150}
