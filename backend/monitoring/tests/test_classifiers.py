"""Image classifiers watched like detectors: drift, performance roll-ups, dashboards, /metrics, shadow mode.

Real images go through the classification API to the tiny real classifier (cat, dog, bird) served by
the registry; drift runs on the reference the classifier trainer saves (mlops.training.yolo_classify);
shadow comparisons run on the real Celery worker.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import onnx
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from PIL import Image, ImageEnhance
from rest_framework.test import APIClient

from backend.alerting.models import Alert, AlertRule
from backend.classification.models import Classification
from backend.classification.services.classify import classify_image
from backend.monitoring.models import DriftReport, DriftSettings, PerformanceBucket, ShadowComparison, ShadowSettings
from backend.monitoring.services import performance
from backend.monitoring.signals import drift_detected
from backend.monitoring.tasks import check_drift_of_production_models
from backend.registry.services import promote_version, register_from_files, stage_version
from backend.serving.uploads import decode_upload
from mlops.data.prepare import PreparedDataset
from mlops.data.synthetic import ClassificationSpec, generate_classification
from mlops.inference.classifier import OnnxClassifier
from mlops.tests.classifier_support import asset
from mlops.training.yolo_classify import save_classifier_reference
from tests.factories import UserFactory
from tests.helpers import Scrape, wait_until
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db(transaction=True)]

URL = "/api/v1/classifications/"
IMAGES_PER_CLASS = 50  # three shape classes: 150 images a stream


def shapes(directory: Path, seed: int) -> Path:
    """The synthetic classification set (one shape per 64 px image, textured backgrounds) in `directory`."""
    return generate_classification(directory, ClassificationSpec(per_class=IMAGES_PER_CLASS, imgsz=64, seed=seed))


def darker_and_noisier(data: bytes, rng: np.random.Generator) -> bytes:
    """The same scene through a worse camera: a third of the light, and sensor noise."""
    with Image.open(io.BytesIO(data)) as opened:
        dark = np.asarray(ImageEnhance.Brightness(opened.convert("RGB")).enhance(0.35), dtype=float)
    noisy = np.clip(dark + rng.normal(0, 20, dark.shape), 0, 255).astype(np.uint8)
    return image_bytes(Image.fromarray(noisy), "JPEG", quality=90)


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """Images like the reference's, and the same kind of images darker and noisier."""
    same = [p.read_bytes() for p in sorted(shapes(tmp_path_factory.mktemp("same"), seed=11).glob("*/*.jpg"))]
    rng = np.random.default_rng(0)
    shifted = shapes(tmp_path_factory.mktemp("shifted"), seed=12)
    return {"same": same, "shifted": [darker_and_noisier(p.read_bytes(), rng) for p in sorted(shifted.glob("*/*.jpg"))]}


@pytest.fixture
def classifier_with_reference(classifier_model, unique_name, settings, tmp_path):
    """The tiny classifier registered with the drift reference its trainer saves, and promoted.

    The reference is made by `save_classifier_reference` over a test split of 150 shape images; its
    answers are named by the classifier's own classes (the shape folders only hold the images).
    """
    prepared = tmp_path / "prepared"
    shapes(prepared / "test", seed=10)
    data = PreparedDataset(
        path=prepared,
        kind="classification",
        data_version="shapes-10",
        class_names=tuple(classifier_model.class_names),
        counts={"test": 3 * IMAGES_PER_CLASS},
        manifest_path=prepared / "manifest.json",
    )
    reference = save_classifier_reference(
        classifier_model.weights, data, tmp_path / "reference.parquet", imgsz=classifier_model.imgsz
    )
    settings.DEFAULT_CLASSIFICATION_MODEL = unique_name
    version = register_from_files(
        unique_name,
        "classification",
        {**classifier_model.files(), "reference": reference},
        metrics={},
        metadata=classifier_model.metadata,
    )
    promote_version(version, reason="test")
    version.refresh_from_db()
    DriftSettings.objects.create(model=version.model, window_predictions=150, min_samples=100)
    return version


def post_images(images: list[bytes], client: APIClient | None = None) -> list[dict]:
    client = client or APIClient()
    answers = []
    for index, data in enumerate(images):
        response = client.post(URL, {"image": SimpleUploadedFile(f"{index}.jpg", data)})
        assert response.status_code == 201, response.content
        answers.append(response.json())
    return answers


def log_classifications(images: list[bytes]) -> None:
    """Through the classify service the API calls (the API itself is exercised by the tests below)."""
    for index, data in enumerate(images):
        classify_image(data, filename=f"{index}.jpg")


def staff_browser() -> Client:
    browser = Client()
    browser.force_login(UserFactory(staff=True))
    return browser


# -- drift ----------------------------------------------------------------------------------------
def test_a_darker_noisier_stream_is_flagged_and_alerted_and_an_unshifted_one_is_not(
    classifier_with_reference, streams, eager
):
    name = classifier_with_reference.model.name
    rule = AlertRule.objects.create(
        name="classifier drift", kind="drift", comparison=">=", threshold=1, window_minutes=60, cooldown_minutes=30
    )
    sent = []
    drift_detected.connect(lambda sender, report, **kwargs: sent.append(report.pk), weak=False, dispatch_uid=name)

    # The beat task checks every production model: the classifier among them.
    log_classifications(streams["same"])
    assert name in check_drift_of_production_models.delay().get()
    unshifted = DriftReport.objects.get(model__name=name)
    assert unshifted.status == "ok", (unshifted.message, unshifted.drifted_columns())
    assert unshifted.trigger == "schedule" and unshifted.reference_source == "training reference"
    assert (unshifted.reference_size, unshifted.current_size) == (150, 150)
    compared = {column["column"] for column in unshifted.columns}
    assert {"brightness", "contrast", "top1_confidence", "predicted_class"} <= compared
    assert {c["column"]: c["kind"] for c in unshifted.columns}["predicted_class"] == "categorical"
    assert sent == [] and not Alert.objects.filter(rule=rule).exists()

    log_classifications(streams["shifted"])
    out = io.StringIO()
    call_command("detect_drift", name, stdout=out)
    shifted = DriftReport.objects.filter(model__name=name).latest("created_at")
    assert shifted.status == "drift", shifted.message
    assert shifted.trigger == "command" and "drift" in out.getvalue() and "brightness" in out.getvalue()
    drifted = set(shifted.drifted_columns())
    assert {"brightness", "contrast"} <= drifted and drifted & {"top1_confidence", "predicted_class"}
    assert shifted.drifted_share >= 0.25 and shifted.html.name.endswith(".html.gz")
    drift_detected.disconnect(dispatch_uid=name)

    # drift_detected went out once, and the drift rule (evaluated by the receiver's task) fired.
    assert sent == [shifted.pk]
    alert = Alert.objects.get(rule=rule)
    assert alert.scope == name and alert.evidence["drift_report"] == shifted.pk
    assert "brightness" in alert.evidence["drifted_columns"]

    # /metrics and the pages show the classifier's latest check.
    scrape = Scrape(Client())
    version = str(classifier_with_reference.version)
    assert scrape.value("modelyard_drift_share", model=name, version=version) == pytest.approx(shifted.drifted_share)
    assert scrape.value("modelyard_drift_detected", model=name, version=version) == 1.0
    browser = staff_browser()
    listing = browser.get("/monitoring/").content.decode()
    assert name in listing and "classification" in listing and "state-attention" in listing
    dashboard = browser.get(f"/monitoring/models/{name}/").content.decode()
    assert "classification" in dashboard and f"/monitoring/drift-reports/{shifted.pk}/" in dashboard


# -- performance ----------------------------------------------------------------------------------
def test_classifications_are_rolled_up_with_their_errors_and_feedback(serve_classifier):
    version = serve_classifier()
    client = APIClient()
    if timezone.now().second > 40:  # the requests below must fall in one minute's bucket
        time.sleep(61 - timezone.now().second)
    images = [asset("bus.jpg").read_bytes(), asset("zidane.jpg").read_bytes(), image_bytes(synthetic_photo(seed=3))]
    answers = post_images(images, client)
    junk = client.post(URL, {"image": SimpleUploadedFile("notes.jpg", b"not an image at all")})
    assert junk.status_code == 400
    code = junk.json()["error"]["code"]
    first, second = answers[0], answers[1]
    other = next(name for name in ("cat", "dog", "bird") if name != second["classes"][0]["class_name"])
    verdicts = [(first, {"verdict": "correct"}), (second, {"verdict": "wrong", "correct_class": other})]
    for answer, verdict in verdicts:
        response = client.post(f"{URL}{answer['id']}/feedback/", verdict, format="json")
        assert response.status_code == 201, response.content

    # Alert rules read the same numbers straight from the log, before any roll-up.
    start = timezone.now() - timedelta(minutes=5)
    live = performance.window_performance(start, timezone.now() + timedelta(seconds=1))[version.pk]
    assert (live["requests"], live["predictions"], live["errors"], live["feedback"]) == (3, 3, 1, 2)

    assert performance.roll_up(now=timezone.now() + timedelta(minutes=1))[60] == 1
    bucket = PerformanceBucket.objects.get(seconds=60, version=version)
    rows = list(Classification.objects.filter(model_version=version))
    assert (bucket.requests, bucket.predictions) == (3, 3)
    assert bucket.latency_p50_ms == pytest.approx(sorted(row.latency_ms for row in rows)[1])
    assert bucket.inference_mean_ms == pytest.approx(np.mean([row.inference_ms for row in rows]), abs=1e-3)
    assert bucket.confidence_mean == pytest.approx(np.mean([row.confidence for row in rows]), abs=1e-4)
    assert sum(bucket.confidence_histogram) == 3
    assert bucket.class_counts == dict(Counter(row.class_name for row in rows))
    assert (bucket.errors, bucket.errors_by_code) == (1, {code: 1})
    assert (bucket.feedback, bucket.feedback_correct, bucket.accuracy) == (2, 1, 0.5)

    browser = staff_browser()
    listing = browser.get("/monitoring/").content.decode()
    assert version.model.name in listing and "classification" in listing
    dashboard = browser.get(f"/monitoring/models/{version.model.name}/").content.decode()
    assert "Class mix" in dashboard and rows[0].class_name in dashboard
    body = browser.get(f"/api/v1/models/{version.model.name}/performance/").json()
    assert [b["requests"] for b in body["buckets"]] == [3] and body["buckets"][0]["accuracy"] == 0.5


# -- shadow mode ----------------------------------------------------------------------------------
RENAMED = ["dog", "cat", "bird"]


@pytest.fixture(scope="module")
def renamed_classifier(classifier_model, tmp_path_factory) -> Path:
    """The tiny classifier's ONNX file with its classes in another order (dog, cat, bird), as a model
    trained on a dataset whose folders sort differently would have them: same scores, other names."""
    model = onnx.load(classifier_model.onnx)
    (names,) = [prop for prop in model.metadata_props if prop.key == "names"]
    names.value = repr(dict(enumerate(RENAMED)))
    path = tmp_path_factory.mktemp("renamed-classifier") / "classifier.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.worker
def test_a_staged_classifier_answers_posted_images_again_and_agreement_matches_the_models(
    celery_worker_process, serve_classifier, classifier_model, renamed_classifier
):
    production = serve_classifier()
    staged = register_from_files(
        production.model.name,
        "classification",
        {"onnx": renamed_classifier},
        metrics={},
        metadata={**classifier_model.metadata, "class_names": RENAMED},
    )
    stage_version(staged)
    ShadowSettings.objects.create(model=production.model, enabled=True, sample_rate=1.0)
    uploads = {
        "bus.jpg": asset("bus.jpg").read_bytes(),
        "zidane.jpg": asset("zidane.jpg").read_bytes(),
        "noise.png": image_bytes(synthetic_photo(seed=4)),
    }
    client = APIClient()
    for name, data in uploads.items():
        response = client.post(URL, {"image": SimpleUploadedFile(name, data), "top_k": "1"})
        assert response.status_code == 201, response.content

    compared = ShadowComparison.objects.filter(model=production.model)
    wait_until(lambda: compared.count() == len(uploads), timeout=60, what="a shadow comparison of each image")
    scorer = OnnxClassifier(
        classifier_model.onnx, class_names=classifier_model.class_names, engine=django_settings.SERVING_ENGINE
    )
    agreeing = 0
    for comparison in compared:
        assert (comparison.production_version_id, comparison.shadow_version_id) == (production.pk, staged.pk)
        row = Classification.objects.get(pk=comparison.prediction_ref)
        p = scorer.predict(decode_upload(uploads[row.filename])).probabilities
        production_class = classifier_model.class_names[int(np.argmax(p))]
        shadow_class = RENAMED[int(np.argmax(p))]
        assert row.class_name == production_class
        # By name, the staging version's "cat" is production's "dog" score and the other way round.
        expected = {"cat": p[1] - p[0], "dog": p[0] - p[1], "bird": 0.0}
        assert comparison.details["shadow_class"] == shadow_class
        assert comparison.matched == (production_class == shadow_class) == (production_class == "bird")
        assert (comparison.compared, comparison.pairs) == (1, 1)
        assert comparison.mean_delta == pytest.approx(expected[production_class], abs=1e-5)
        assert comparison.mean_abs_delta == pytest.approx(2 * abs(p[0] - p[1]) / 3, abs=1e-5)
        agreeing += comparison.matched
    assert 0 < agreeing < len(uploads)  # zidane is a bird to both; bus is a cat to one and a dog to the other

    api = APIClient()
    api.force_authenticate(UserFactory(staff=True))
    summary = api.get(f"/api/v1/models/{production.model.name}/shadow/").json()["summary"]
    assert summary["kind"] == "classification" and summary["samples"] == summary["images"] == len(uploads)
    assert summary["images_agreeing"] == agreeing
    assert summary["top1_agreement"] == pytest.approx(agreeing / len(uploads), abs=1e-4)
    page = staff_browser().get(f"/monitoring/models/{production.model.name}/").content.decode()
    assert 'data-field="top1_agreement"' in page and f"{summary['top1_agreement']:.3f}" in page
