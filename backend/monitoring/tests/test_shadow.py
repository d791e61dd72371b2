"""Shadow mode through the real prediction API and a real Celery worker.

A version is in production and another is staged; with shadow mode on, predictions posted like
clients post them are answered again by the staging version on the worker (the `monitoring`
queue), and the comparisons it saves are checked against the two versions' outputs computed here,
straight from their model files.
"""

from __future__ import annotations

import os
import threading

import pytest
from celery.signals import before_task_publish
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.loader import render_to_string
from django.test import Client
from rest_framework.test import APIClient

from backend.core.mlops_config import mlops_config
from backend.core.panels import PROMOTION, panels
from backend.monitoring.models import ShadowComparison, ShadowSettings
from backend.monitoring.services.shadow import _shadow_thread, compare_logged
from backend.registry.services import stage_version
from backend.scoring.models import TabularPrediction
from mlops.inference.detector import OnnxDetector
from mlops.inference.images import decode_image
from mlops.monitoring.shadow import compare_detections
from tests.factories import UserFactory
from tests.helpers import post_records, stream_from, wait_until
from tests.support import image_bytes, synthetic_photo, ultralytics_asset

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

TASK = "monitoring.compare_shadow"


@pytest.fixture
def published():
    """Names of the Celery tasks this process publishes during the test (Celery's own signal)."""
    names: list[str] = []

    def record(sender=None, **kwargs):
        names.append(sender)

    before_task_publish.connect(record, weak=False)
    yield names
    before_task_publish.disconnect(record)


def staff_api() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory(staff=True))
    return client


def shadow_on(model, rate: float = 1.0) -> ShadowSettings:
    return ShadowSettings.objects.create(model=model, enabled=True, sample_rate=rate)


def xgboost_labels(files, records: list[dict]) -> tuple[list[str], list[float]]:
    """The version's labels and positive-class probabilities, from its XGBoost file (not our scorer)."""
    import pandas as pd
    import xgboost as xgb

    names = [feature["name"] for feature in files.feature_schema]
    booster = xgb.Booster()
    booster.load_model(str(files.model))
    positive = booster.predict(xgb.DMatrix(pd.DataFrame(records)[names], feature_names=names))
    return [files.class_names[int(p > 0.5)] for p in positive], [float(p) for p in positive]


# -- tabular --------------------------------------------------------------------------------------
def test_staged_tabular_version_answers_every_call_again_and_agreement_matches_the_models(
    celery_worker_process, serve_tabular, register_tabular, model_files, breast_cancer
):
    production = serve_tabular(0)
    staged = stage_version(register_tabular(1))
    shadow_on(production.model)
    calls = [stream_from(breast_cancer, 40, seed=seed) * (1.0 + seed / 10) for seed in (1, 2, 3)]
    for records in calls:
        post_records(records)

    compared = ShadowComparison.objects.filter(model=production.model)
    wait_until(lambda: compared.count() == len(calls), timeout=60, what="a shadow comparison of each call")
    agreeing = total = 0
    for comparison in compared:
        assert (comparison.production_version_id, comparison.shadow_version_id) == (production.pk, staged.pk)
        assert 0.0 <= comparison.agreement <= 1.0 and comparison.compared == 40
        rows = TabularPrediction.objects.filter(request_id=comparison.prediction_ref).order_by("record_index")
        inputs = [row.inputs for row in rows]
        ours, p_ours = xgboost_labels(model_files["tabular"][0], inputs)
        theirs, p_theirs = xgboost_labels(model_files["tabular"][1], inputs)
        assert [row.label for row in rows] == ours  # what production answered
        matched = sum(a == b for a, b in zip(ours, theirs, strict=True))
        assert comparison.matched == matched
        assert comparison.agreement == pytest.approx(matched / 40)
        delta = sum(abs(a - b) for a, b in zip(p_ours, p_theirs, strict=True)) / 40
        assert comparison.mean_abs_delta == pytest.approx(delta, abs=1e-5)  # ONNX float32 vs XGBoost
        agreeing, total = agreeing + matched, total + 40

    body = staff_api().get(f"/api/v1/models/{production.model.name}/shadow/").json()
    summary = body["summary"]
    assert summary["production"]["version"] == production.version
    assert summary["shadow"]["version"] == staged.version and summary["shadow_is_staging"]
    assert summary["samples"] == 3 and summary["records"] == total == 120
    assert summary["label_agreement"] == pytest.approx(agreeing / total, abs=1e-4)
    assert 0.0 <= summary["mean_probability_delta"] <= 1.0
    assert len(body["comparisons"]) == 3 and len(body["pairs"]) == 1
    assert APIClient().get(f"/api/v1/models/{production.model.name}/shadow/").status_code in (401, 403)
    plain = APIClient()
    plain.force_authenticate(UserFactory(username="not-staff"))
    assert plain.get(f"/api/v1/models/{production.model.name}/shadow/").status_code == 403

    # Beside the metrics: the model's dashboard, and the registry's promotion confirmation panel.
    browser = Client()
    browser.force_login(UserFactory(staff=True))
    page = browser.get(f"/monitoring/models/{production.model.name}/").content.decode()
    assert 'id="shadow-agreement"' in page and f"{summary['label_agreement']:.3f}" in page
    (panel,) = [p for p in panels(place=PROMOTION, model=production.model, version=staged) if "shadow" in p.template]
    assert panel.context["summary"]["label_agreement"] == summary["label_agreement"]
    assert f"{summary['label_agreement']:.3f}" in render_to_string(panel.template, {"panel": panel.context})
    admin = Client()
    admin.force_login(UserFactory(superuser=True))
    confirmation = admin.post(
        "/admin/registry/modelversion/", {"action": "promote_to_production", "_selected_action": [staged.pk]}
    ).content.decode()
    assert 'id="shadow-agreement"' in confirmation and f"{summary['label_agreement']:.3f}" in confirmation


# -- detection ------------------------------------------------------------------------------------
def test_staged_detector_answers_posted_images_again_and_match_share_matches_the_models(
    celery_worker_process, serve_detector, register_detector, model_files
):
    production = serve_detector(0)
    staged = stage_version(register_detector(1))
    shadow_on(production.model)
    uploads = {"bus.jpg": ultralytics_asset("bus.jpg").read_bytes(), "noise.png": image_bytes(synthetic_photo(seed=4))}
    client = APIClient()
    for name, data in uploads.items():
        response = client.post(
            "/api/v1/detections/", {"image": SimpleUploadedFile(name, data), "conf": 0.001, "max_det": 40}
        )
        assert response.status_code == 201, response.content

    compared = ShadowComparison.objects.filter(model=production.model)
    wait_until(lambda: compared.count() == len(uploads), timeout=60, what="a shadow comparison of each image")
    engine = django_settings.SERVING_ENGINE
    detectors = [
        OnnxDetector(files.onnx, class_names=files.class_names, engine=engine) for files in model_files["detectors"][:2]
    ]
    config = mlops_config()
    for comparison in compared:
        assert comparison.shadow_version_id == staged.pk
        assert 0.0 <= comparison.agreement <= 1.0
        detection = production.detections.get(pk=comparison.prediction_ref)
        data = uploads[detection.filename]
        image = decode_image(data, max_pixels=config.max_image_pixels, max_side=config.max_image_side)
        answers = [[b.to_dict() for b in d.predict(image, conf=0.001, iou=0.7, max_det=40).boxes] for d in detectors]
        assert detection.boxes == answers[0]
        expected = compare_detections(*answers)
        assert expected["compared"] > 0  # the tiny untrained detectors do find boxes at conf 0.001
        assert (comparison.compared, comparison.matched) == (expected["compared"], expected["matched"])
        assert comparison.agreement == pytest.approx(expected["match_share"])

    summary = staff_api().get(f"/api/v1/models/{production.model.name}/shadow/").json()["summary"]
    assert summary["samples"] == 2 and 0.0 <= summary["box_match_share"] <= 1.0


# -- when nothing is compared ---------------------------------------------------------------------
def test_no_sample_is_sent_with_shadow_off_without_a_staging_version_or_at_rate_zero(
    celery_worker_process, serve_tabular, register_tabular, breast_cancer, published
):
    production = serve_tabular(0)
    candidate = register_tabular(1)
    records = stream_from(breast_cancer, 5, seed=5)

    post_records(records)  # shadow mode never configured: off by default
    shadow = shadow_on(production.model)
    post_records(records)  # on, but nothing is staged
    stage_version(candidate)
    shadow.sample_rate = 0.0
    shadow.save()
    post_records(records)  # staged, on, but sampling nothing
    assert TASK not in published

    shadow.sample_rate = 1.0
    shadow.save()
    post_records(records)
    assert published.count(TASK) == 1  # one publish per call, whatever its number of records
    compared = ShadowComparison.objects.filter(model=production.model)
    wait_until(lambda: compared.count() == 1, timeout=60, what="the comparison of the sampled call")


def test_the_worker_compares_nothing_once_shadow_mode_is_off_again(serve_tabular, register_tabular, breast_cancer):
    production = serve_tabular(0)
    stage_version(register_tabular(1))
    post_records(stream_from(breast_cancer, 5, seed=6))
    ids = [str(pk) for pk in TabularPrediction.objects.values_list("pk", flat=True)]

    assert compare_logged(kind="tabular", model_name=production.model.name, prediction_ids=ids)["status"] == (
        "shadow_off"
    )
    settings = shadow_on(production.model)
    assert compare_logged(kind="tabular", model_name=production.model.name, prediction_ids=ids)["saved"] == 1
    # A redelivered message saves nothing twice.
    assert compare_logged(kind="tabular", model_name=production.model.name, prediction_ids=ids)["saved"] == 0
    assert ShadowComparison.objects.count() == 1
    settings.delete()
    assert compare_logged(kind="tabular", model_name=production.model.name, prediction_ids=ids)["saved"] == 0
    # The staging version ran in this process's shadow thread, which only gets the CPU nothing else wants.
    assert django_settings.SHADOW_PRIORITY == "idle"
    assert _shadow_thread().submit(lambda: os.sched_getscheduler(threading.get_native_id())).result() == os.SCHED_IDLE
    assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER  # this thread: unchanged


def test_pages_say_when_nothing_was_compared(serve_tabular, register_tabular):
    production = serve_tabular(0)
    candidate = register_tabular(1)
    browser = Client()
    browser.force_login(UserFactory(staff=True))
    page = browser.get(f"/monitoring/models/{production.model.name}/").content.decode()
    assert 'id="shadow-agreement"' in page and "No shadow comparison in this period" in page
    (panel,) = [p for p in panels(place=PROMOTION, model=production.model, version=candidate) if "shadow" in p.template]
    assert panel.context["summary"] is None
    assert "No shadow comparison of v1.1" in render_to_string(panel.template, {"panel": panel.context})
    body = staff_api().get(f"/api/v1/models/{production.model.name}/shadow/").json()
    assert body["summary"] is None and body["pairs"] == [] and body["comparisons"] == []
