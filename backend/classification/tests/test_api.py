"""The classification API with real photos against the tiny real classifier (cat, dog, bird), registered
and promoted through the registry and served by the process holder."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from backend.classification.models import Classification, ClassificationFeedback
from backend.serving.services import served_model
from backend.serving.signals import prediction_logged
from backend.serving.uploads import decode_upload
from mlops.tests.classifier_support import asset
from tests.factories import VersionFactory
from tests.helpers import Scrape
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db(transaction=True)]

URL = "/api/v1/classifications/"
CLASSES = ["cat", "dog", "bird"]


def upload(client: APIClient, data: bytes, name: str = "image.jpg", **params):
    return client.post(URL, {"image": SimpleUploadedFile(name, data), **params})


def stored_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def announced():
    """The prediction_logged signals sent during the test."""
    sent: list[dict] = []

    def receive(sender, **kwargs):
        sent.append(kwargs)

    prediction_logged.connect(receive, dispatch_uid="classification-test")
    yield sent
    prediction_logged.disconnect(dispatch_uid="classification-test")


# -- the happy path -------------------------------------------------------------------------------------
def test_bus_and_zidane_are_classified_logged_and_stored(serve_classifier, announced):
    version = serve_classifier()
    client = APIClient()
    best = {}
    for name, params in (("bus.jpg", {"top_k": "2"}), ("zidane.jpg", {})):
        data = asset(name).read_bytes()
        response = upload(client, data, name, **params)

        assert response.status_code == 201, response.content
        body = response.json()
        assert body["model"] == {"name": version.model.name, "version": version.version, "label": "v1.0"}
        expected = Image.open(io.BytesIO(data)).size
        assert body["image"] == {"width": expected[0], "height": expected[1]}
        assert body["latency_ms"] >= body["inference_ms"] > 0
        assert body["top_k"] == len(body["classes"]) == (2 if params else 3)  # default: min(5, 3 classes)
        probabilities = [score["probability"] for score in body["classes"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert {score["class_name"] for score in body["classes"]} <= set(CLASSES)
        assert all(CLASSES[score["class_id"]] == score["class_name"] for score in body["classes"])

        row = Classification.objects.get(pk=body["id"])
        assert row.model_version_id == version.pk and row.source == "api" and row.filename == name
        assert sum(row.probabilities) == pytest.approx(1, abs=1e-5) and len(row.probabilities) == 3
        assert (row.class_name, row.confidence) == (body["classes"][0]["class_name"], probabilities[0])
        assert row.classes == body["classes"]
        # The answer is the served model's on the pixels the upload decodes to.
        again = served_model(version.model.name, "classification").predictor.predict(decode_upload(data))
        assert row.probabilities == pytest.approx(again.probabilities, abs=1e-6)
        assert re.fullmatch(rf"classifications/\d{{4}}/\d\d/\d\d/{row.pk.hex}\.jpeg", row.image.name)
        with default_storage.open(row.image.name, "rb") as handle:
            assert handle.read() == data  # the upload as sent
        assert set(row.features) == {"width", "height", "brightness", "contrast", "sharpness", "colourfulness"}
        assert row.features["width"] == float(expected[0])  # after the answer, before the next request

        read_back = client.get(f"{URL}{row.pk}/").json()
        assert {key: read_back[key] for key in body} == body and read_back["feedback"] == []
        thumbnail = client.get(f"{URL}{row.pk}/thumbnail.jpg")
        assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(thumbnail.content)).size) == 320
        best[name] = row.class_name

    assert len(set(best.values())) == 2  # the test model tells these two photos apart
    assert [(s["kind"], s["model_name"], s["version_id"]) for s in announced] == [
        ("classification", version.model.name, version.pk)
    ] * 2
    assert [s["prediction_ids"] for s in announced] == [
        [str(r.pk)] for r in Classification.objects.order_by("created_at")
    ]


def test_each_classification_counts_on_the_metrics_with_its_best_class(serve_classifier, unique_name):
    version = serve_classifier()
    client = APIClient()
    bus = asset("bus.jpg").read_bytes()
    upload(client, bus)  # the first request loads the model
    before = Scrape(client)

    body = upload(client, bus).json()
    not_an_image = upload(client, b"not a picture")

    after = Scrape(client)
    series = {"model": unique_name, "version": str(version.version), "kind": "classification"}
    assert (
        after.value("modelyard_predictions_total", **series) - before.value("modelyard_predictions_total", **series)
        == 1
    )
    top1 = {"model": unique_name, "version": str(version.version), "class_name": body["classes"][0]["class_name"]}
    name = "modelyard_predicted_class_total"
    assert after.value(name, **top1) - before.value(name, **top1) == 1
    errors = {"model": unique_name, "kind": "classification", "code": not_an_image.json()["error"]["code"]}
    name = "modelyard_prediction_errors_total"
    assert after.value(name, **errors) - before.value(name, **errors) == 1


# -- refused: a JSON error naming the problem, and nothing written ------------------------------------
@pytest.mark.parametrize(
    ("data", "params", "status", "code", "field"),
    [
        (None, {}, 400, "validation_error", "image"),
        (b"this is not an image at all", {}, 400, "invalid_image", None),
        (b"", {}, 400, "validation_error", "image"),
        ("tall", {}, 413, "image_too_large", None),
        ("ok", {"top_k": "0"}, 400, "validation_error", "top_k"),
        ("ok", {"top_k": "abc"}, 400, "validation_error", "top_k"),
        ("ok", {"top_k": "4"}, 400, "invalid_parameter", None),  # past the model's 3 classes
        ("ok", {"model": "no-such-model"}, 404, "model_not_found", None),
    ],
)
def test_bad_input_is_refused_with_a_named_problem_and_nothing_written(
    serve_classifier, data, params, status, code, field
):
    serve_classifier()
    before = stored_files()
    images = {
        "ok": image_bytes(synthetic_photo(64, 48), "PNG"),
        "tall": image_bytes(Image.new("L", (2, settings.MAX_IMAGE_SIDE + 1)), "PNG"),
    }
    payload = dict(params)
    if data is not None:
        payload["image"] = SimpleUploadedFile("upload.png", images.get(data, data) if isinstance(data, str) else data)

    response = APIClient().post(URL, payload)

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    if field:
        assert field in error["fields"] and error["message"].startswith(field)
    if code == "invalid_parameter":
        assert error["details"]["field"] == "top_k" and error["details"]["max"] == 3
    assert Classification.objects.count() == 0
    assert stored_files() == before


def test_a_detector_named_is_the_wrong_kind_and_nothing_in_production_is_503(
    classifier_model, model_files, unique_name, settings
):
    settings.DEFAULT_CLASSIFICATION_MODEL = unique_name
    VersionFactory(name=unique_name, kind="classification", files=classifier_model, metrics={})  # not promoted
    VersionFactory(name=f"{unique_name}-det", files=model_files["detectors"][0], metrics={}, promoted=True)
    client = APIClient()
    photo = image_bytes(synthetic_photo(64, 64))

    waiting = upload(client, photo)  # the default classifier: registered, never promoted
    assert waiting.status_code == 503, waiting.content
    assert waiting.json()["error"]["code"] == "no_production_version"
    assert unique_name in waiting.json()["error"]["message"]

    wrong = upload(client, photo, model=f"{unique_name}-det")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_model_kind"
    assert Classification.objects.count() == 0


# -- feedback and who sees what ---------------------------------------------------------------------------
def test_feedback_is_checked_against_the_versions_classes(serve_classifier):
    serve_classifier()
    client = APIClient()
    classification = upload(client, asset("bus.jpg").read_bytes()).json()
    url = f"{URL}{classification['id']}/feedback/"

    right = client.post(url, {"verdict": "correct", "comment": "yes"}, format="json")
    wrong = client.post(url, {"verdict": "wrong", "correct_class": "bird"}, format="json")
    assert (right.status_code, wrong.status_code) == (201, 201), (right.content, wrong.content)
    assert wrong.json()["correct_class"] == "bird" and wrong.json()["trusted"] is False

    unknown = client.post(url, {"verdict": "wrong", "correct_class": "zebra"}, format="json")
    assert unknown.status_code == 400
    error = unknown.json()["error"]
    assert error["code"] == "invalid_feedback"
    assert error["details"] == {"field": "correct_class", "classes": CLASSES}
    contradiction = client.post(url, {"verdict": "correct", "correct_class": "dog"}, format="json")
    assert contradiction.status_code == 400 and contradiction.json()["error"]["details"]["field"] == "correct_class"
    bad_verdict = client.post(url, {"verdict": "maybe"}, format="json")
    assert bad_verdict.status_code == 400 and "verdict" in bad_verdict.json()["error"]["fields"]
    as_number = client.post(url, {"verdict": "wrong", "correct_class": 2}, format="json")
    assert as_number.status_code == 400 and "correct_class" in as_number.json()["error"]["fields"]
    missing = client.post(f"{URL}00000000-0000-0000-0000-000000000000/feedback/", {"verdict": "correct"}, format="json")
    assert missing.status_code == 404

    detail = client.get(f"{URL}{classification['id']}/").json()
    assert [(f["verdict"], f["correct_class"]) for f in detail["feedback"]] == [("wrong", "bird"), ("correct", "")]
    assert ClassificationFeedback.objects.count() == 2


def test_only_trusted_reviewers_verdicts_count_as_labels(serve_classifier, plain_user, admin_user, django_user_model):
    serve_classifier()
    classification = upload(APIClient(), asset("zidane.jpg").read_bytes()).json()
    url = f"{URL}{classification['id']}/feedback/"
    reviewer = django_user_model.objects.create_user("reviewer", password="pw-reviewer-1")
    reviewer.user_permissions.add(Permission.objects.get(codename="trusted_feedback"))

    def judge(user=None) -> bool:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        response = client.post(url, {"verdict": "correct"}, format="json")
        assert response.status_code == 201, response.content
        return response.json()["trusted"]

    assert [judge(), judge(plain_user), judge(reviewer), judge(admin_user)] == [False, False, True, True]
    verdicts = ClassificationFeedback.objects.all()
    assert {f.user for f in verdicts.trusted()} == {reviewer, admin_user}
    assert {f.user for f in verdicts.untrusted()} == {None, plain_user}
    reviewer.is_active = False  # withdrawing someone's trust withdraws their labels too
    reviewer.save()
    assert {f.user for f in verdicts.trusted()} == {admin_user}


def test_listing_needs_login_and_shows_only_your_own(serve_classifier, plain_user, admin_user, django_user_model):
    serve_classifier()
    photo = image_bytes(synthetic_photo(64, 64))
    alice = APIClient()
    alice.force_authenticate(plain_user)
    bob = APIClient()
    bob.force_authenticate(django_user_model.objects.create_user("bob", password="pw-bob-12345"))
    mine = upload(alice, photo).json()["id"]
    upload(bob, photo)
    upload(APIClient(), photo)

    refused = APIClient().get(URL)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "not_authenticated"
    page = alice.get(URL).json()
    assert page["count"] == 1 and [c["id"] for c in page["results"]] == [mine]
    staff = APIClient()
    staff.force_authenticate(admin_user)
    assert staff.get(URL).json()["count"] == 3
    assert staff.get(URL, {"limit": "abc"}).status_code == 400
    assert Classification.objects.get(pk=mine).user == plain_user


def test_old_images_are_purged_and_missing_descriptors_filled_from_the_stored_upload(serve_classifier):
    from datetime import timedelta

    from django.utils import timezone

    from backend.classification.tasks import fill_missing_features, purge_old_images

    serve_classifier()
    ids = [upload(APIClient(), asset(name).read_bytes(), name).json()["id"] for name in ("bus.jpg", "zidane.jpg")]
    bus, zidane = (Classification.objects.get(pk=pk) for pk in ids)
    expected = bus.features
    # bus: a row whose process died before its descriptors; zidane: past the retention period.
    Classification.objects.filter(pk=bus.pk).update(features={}, created_at=timezone.now() - timedelta(minutes=5))
    Classification.objects.filter(pk=zidane.pk).update(
        created_at=timezone.now() - timedelta(days=settings.PREDICTION_IMAGE_RETENTION_DAYS + 1)
    )
    stored = zidane.image.name
    assert default_storage.exists(stored) and purge_old_images() == 1
    zidane.refresh_from_db()
    assert zidane.image_deleted_at is not None and not zidane.image and not default_storage.exists(stored)
    assert fill_missing_features() == 1
    assert Classification.objects.get(pk=bus.pk).features == pytest.approx(expected)
    assert fill_missing_features() == 0
