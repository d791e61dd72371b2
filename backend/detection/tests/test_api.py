"""The detection API with real images against real models registered and promoted through the registry."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from backend.core.mlops_config import mlops_config
from backend.detection.models import Detection, Feedback
from mlops.inference.detector import OnnxDetector
from mlops.inference.images import decode_image
from tests.factories import TrainingJobFactory, VersionFactory
from tests.support import image_bytes, synthetic_photo, ultralytics_asset

pytestmark = [pytest.mark.django_db(transaction=True)]

URL = "/api/v1/detections/"


def upload(client: APIClient, data: bytes, name: str = "image.png", url: str = URL, field: str = "image", **params):
    return client.post(url, {field: _file(data, name), **params})


def _file(data: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def stored_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def best_sample(client, samples) -> tuple[bytes, dict]:
    """The held-out shapes image on which the trained detector finds the most boxes (at conf 0.05)."""
    answers = []
    for path in samples:
        data = path.read_bytes()
        response = upload(client, data, path.name, conf=0.05)
        assert response.status_code == 201, response.content
        answers.append((len(response.json()["boxes"]), data, response.json()))
    count, data, body = max(answers, key=lambda item: item[0])
    assert count > 0, "the trained detector finds no shape in any held-out image"
    return data, body


# -- the happy path -------------------------------------------------------------------------------------
def test_bus_image_is_detected_logged_and_stored(serve_detector):
    version = serve_detector(0)
    bus = ultralytics_asset("bus.jpg").read_bytes()
    client = APIClient()

    response = upload(client, bus, "bus.jpg", conf=0.001, iou=0.5, max_det=50)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["model"] == {"name": version.model.name, "version": version.version, "label": "v1.0"}
    assert body["image"] == {"width": 810, "height": 1080}
    assert body["latency_ms"] >= body["inference_ms"] > 0
    assert len(body["boxes"]) <= 50
    detection = Detection.objects.get(pk=body["id"])
    assert detection.model_version_id == version.pk
    assert (detection.conf, detection.iou, detection.max_det) == (0.001, 0.5, 50)
    assert detection.filename == "bus.jpg" and detection.source == "api"
    assert set(detection.features) == {"width", "height", "brightness", "contrast", "sharpness", "colourfulness"}
    assert detection.features["width"] == 810.0
    with default_storage.open(detection.image.name, "rb") as handle:
        assert handle.read() == bus  # the upload as sent
    assert not detection.thumbnail  # made on first request, off the prediction path
    thumb = Image.open(io.BytesIO(client.get(f"{URL}{detection.pk}/thumbnail.jpg").content))
    assert max(thumb.size) == 320 and thumb.size[0] < thumb.size[1]
    detection.refresh_from_db()
    with default_storage.open(detection.thumbnail.name, "rb") as handle:
        assert Image.open(handle).size == thumb.size  # and kept for the next time


def test_stored_uploads_get_our_name_and_the_suffix_of_what_they_are(serve_detector):
    serve_detector(0)
    png = image_bytes(synthetic_photo(64, 48), "PNG")
    for client_name in ("page.html", "x.php.jpg", "no-suffix", "a" * 300):
        response = upload(APIClient(), png, client_name)
        assert response.status_code == 201, response.content
        detection = Detection.objects.get(pk=response.json()["id"])
        assert Path(detection.image.name).name == f"{detection.pk.hex}.png"
        assert detection.filename == client_name[:255]  # kept as the client's label only


def test_answer_matches_the_predictor_on_the_same_pixels(serve_trained, trained_detector):
    version = serve_trained()
    client = APIClient()
    data, body = best_sample(client, trained_detector.samples)

    config = mlops_config()
    image = decode_image(data, max_pixels=config.max_image_pixels, max_side=config.max_image_side)
    direct = OnnxDetector(
        trained_detector.files.onnx, class_names=trained_detector.files.class_names, engine=settings.SERVING_ENGINE
    )
    expected = [box.to_dict() for box in direct.predict(image, conf=0.05, iou=0.7, max_det=300).boxes]

    assert body["boxes"] == expected
    assert body["model"]["version"] == version.version
    for box in body["boxes"]:
        x1, y1, x2, y2 = box["xyxy"]
        assert 0 <= x1 < x2 <= body["image"]["width"] and 0 <= y1 < y2 <= body["image"]["height"]
        assert box["xyxyn"] == pytest.approx([x1 / 64, y1 / 64, x2 / 64, y2 / 64], abs=1e-3)
        assert box["class_name"] == ["circle", "square", "triangle"][box["class_id"]]
    # Read back: the same answer, now with its (empty) feedback.
    again = client.get(f"{URL}{body['id']}/").json()
    assert again["boxes"] == body["boxes"] and again["model"] == body["model"] and again["feedback"] == []


def test_zidane_and_synthetic_images_through_compat_and_api(serve_detector):
    serve_detector(1)
    client = APIClient()
    zidane = ultralytics_asset("zidane.jpg").read_bytes()
    compat = upload(client, zidane, "zidane.jpg", url="/predict", field="file", conf=0.001)
    assert compat.status_code == 200, compat.content
    assert compat.json()["image"] == {"width": 1280, "height": 720}
    assert Detection.objects.get(pk=compat.json()["id"]).source == "compat"

    photo = image_bytes(synthetic_photo(200, 150), "WEBP")
    answer = upload(client, photo, "noise.webp")
    assert answer.status_code == 201
    assert answer.json()["image"] == {"width": 200, "height": 150}
    assert answer.json()["model"] == compat.json()["model"]


def test_exif_rotated_upload_gives_the_boxes_of_the_upright_image(serve_trained, trained_detector):
    serve_trained()
    client = APIClient()
    upright, body = best_sample(client, trained_detector.samples)

    # The same picture stored sideways, with EXIF orientation 6 ("rotate 90 CW to display") to put it right.
    sideways = Image.open(io.BytesIO(upright)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = image_bytes(sideways, "PNG", exif=exif.tobytes())
    answer = upload(client, rotated, "sideways.png", conf=0.05)

    assert answer.status_code == 201, answer.content
    assert answer.json()["boxes"] == body["boxes"]

    wide = synthetic_photo(300, 200)
    exif_wide = image_bytes(wide.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes())
    assert upload(client, exif_wide, "wide.jpg").json()["image"] == {"width": 300, "height": 200}


def test_a_large_photo_is_answered_in_its_own_pixels(serve_trained, trained_detector):
    serve_trained()
    client = APIClient()
    small, _ = best_sample(client, trained_detector.samples)
    # The same picture as a 2048x2048 JPEG: decoded at 1/8 scale for the 64-px detector.
    large = image_bytes(Image.open(io.BytesIO(small)).convert("RGB").resize((2048, 2048), Image.BICUBIC), "JPEG")
    answer = upload(client, large, "large.jpg", conf=0.05)

    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["image"] == {"width": 2048, "height": 2048}
    config = mlops_config()
    reduced = decode_image(large, max_pixels=config.max_image_pixels, max_side=config.max_image_side, fit=(64, 64))
    assert reduced.size == (256, 256)
    direct = OnnxDetector(
        trained_detector.files.onnx, class_names=trained_detector.files.class_names, engine=settings.SERVING_ENGINE
    )
    assert body["boxes"] == [box.to_dict() for box in direct.predict(reduced, conf=0.05).boxes]
    assert body["boxes"] and all(box["xyxy"][2] > 64 for box in body["boxes"])  # photo pixels, not the decode's
    detection = Detection.objects.get(pk=body["id"])
    assert (detection.features["width"], detection.features["height"]) == (2048, 2048)
    assert Image.open(default_storage.open(detection.image.name)).size == (2048, 2048)  # stored as uploaded


def test_16_bit_image_is_not_washed_out(serve_detector):
    serve_detector(0)
    # A 12-bit scan in a 16-bit container: a left-to-right ramp from 0 to 4095.
    ramp = np.tile(np.linspace(0, 4095, 256, dtype=np.uint16), (128, 1))
    sixteen = Image.fromarray(ramp)
    assert sixteen.mode == "I;16"
    data = image_bytes(sixteen, "PNG")

    response = upload(APIClient(), data, "scan-16bit.png")

    assert response.status_code == 201, response.content
    detection = Detection.objects.get(pk=response.json()["id"])
    assert 100 < detection.features["brightness"] < 155  # a ramp, not a white page
    assert detection.features["contrast"] > 50
    thumbnail = APIClient().get(f"{URL}{detection.pk}/thumbnail.jpg").content
    thumb = np.asarray(Image.open(io.BytesIO(thumbnail)).convert("L"), dtype=np.float32)
    assert thumb[:, :20].mean() < 40 and thumb[:, -20:].mean() > 215


# -- bad input: a JSON error naming the problem, and nothing written ------------------------------------
@pytest.mark.parametrize(
    ("data", "params", "status", "code", "field"),
    [
        (None, {}, 400, "validation_error", "image"),
        (b"this is not an image at all", {}, 400, "invalid_image", None),
        (b"", {}, 400, "validation_error", "image"),
        ("tall", {}, 413, "image_too_large", None),
        ("many-pixels", {}, 413, "image_too_large", None),
        ("ok", {"conf": "1.5"}, 400, "validation_error", "conf"),
        ("ok", {"conf": "abc"}, 400, "validation_error", "conf"),
        ("ok", {"iou": "-0.1"}, 400, "validation_error", "iou"),
        ("ok", {"max_det": "0"}, 400, "validation_error", "max_det"),
        ("ok", {"model": "no-such-model"}, 404, "model_not_found", None),
    ],
)
def test_bad_input_is_refused_with_a_named_problem_and_nothing_written(
    serve_detector, data, params, status, code, field
):
    serve_detector(0)
    before = stored_files()
    images = {
        "ok": image_bytes(synthetic_photo(64, 48), "PNG"),
        "tall": image_bytes(Image.new("L", (2, settings.MAX_IMAGE_SIDE + 1)), "PNG"),
        "many-pixels": image_bytes(Image.new("1", (7000, 7000)), "PNG"),  # 49 MP > 40 MP, a 6 KB file
    }
    payload = dict(params)
    if data is not None:
        payload["image"] = _file(images.get(data, data) if isinstance(data, str) else data, "upload.png")

    response = APIClient().post(URL, payload)

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    if field:
        assert field in error["fields"] and error["message"].startswith(field)
    assert Detection.objects.count() == 0
    assert stored_files() == before


def test_no_production_version_and_wrong_kind_are_clear(model_files, unique_name, settings):
    files = model_files["detectors"][0]
    VersionFactory(name=unique_name, kind="detection", files=files, metrics={})
    tabular = model_files["tabular"][0]
    VersionFactory(name=f"{unique_name}-tab", kind="tabular", files=tabular, metrics={})
    client = APIClient()
    photo = image_bytes(synthetic_photo(64, 64))

    waiting = upload(client, photo, model=unique_name)
    assert waiting.status_code == 503
    assert waiting.json()["error"]["code"] == "no_production_version"
    assert unique_name in waiting.json()["error"]["message"]

    VersionFactory(name=f"{unique_name}-tab", kind="tabular", files=tabular, metrics={}, promoted=True)
    wrong = upload(client, photo, model=f"{unique_name}-tab")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_model_kind"
    assert Detection.objects.count() == 0


# -- reading back, pictures, feedback ------------------------------------------------------------------
def test_annotated_heatmap_image_and_thumbnail(serve_trained, trained_detector):
    serve_trained()
    client = APIClient()
    data, body = best_sample(client, trained_detector.samples)
    base = f"{URL}{body['id']}"
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)

    annotated = client.get(f"{base}/annotated.png")
    assert annotated.status_code == 200 and annotated["Content-Type"] == "image/png"
    drawn = np.asarray(Image.open(io.BytesIO(annotated.content)).convert("RGB"), dtype=np.int16)
    assert drawn.shape == original.shape and np.abs(drawn - original).max() > 100  # boxes were drawn
    bare = client.get(f"{base}/annotated.png", {"min_confidence": "1"})
    bare_pixels = np.asarray(Image.open(io.BytesIO(bare.content)).convert("RGB"), dtype=np.int16)
    assert np.abs(bare_pixels - original).max() <= 8  # only PNG round-off of the decoded JPEG: no box

    heat = client.get(f"{base}/heatmap.png")
    assert heat.status_code == 200 and heat["Content-Type"] == "image/png"
    heat_pixels = np.asarray(Image.open(io.BytesIO(heat.content)).convert("RGB"), dtype=np.float32)
    cold = client.get(f"{base}/heatmap.png", {"min_confidence": "1"})
    cold_pixels = np.asarray(Image.open(io.BytesIO(cold.content)).convert("RGB"), dtype=np.float32)
    overlay = np.abs(heat_pixels - cold_pixels).sum(axis=2)  # what the density added to the dimmed image
    y, x = np.unravel_index(np.argmax(overlay), overlay.shape)
    assert overlay[y, x] > 100
    assert any(b["xyxy"][0] <= x <= b["xyxy"][2] and b["xyxy"][1] <= y <= b["xyxy"][3] for b in body["boxes"])
    assert np.abs(cold_pixels - original * 0.65).max() <= 10  # no boxes: only the dimmed image

    assert client.get(f"{base}/heatmap.png", HTTP_ACCEPT="image/png").status_code == 200
    assert client.get(f"{base}/image.jpg")["Content-Type"] == "image/jpeg"
    thumbnail = client.get(f"{base}/thumbnail.jpg")
    assert Image.open(io.BytesIO(thumbnail.content)).size == (64, 64)
    missing = client.get(f"{URL}00000000-0000-4000-8000-000000000000/annotated.png", HTTP_ACCEPT="image/png")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = client.get(f"{base}/heatmap.png", {"min_confidence": "2"})
    assert bad.status_code == 400 and "min_confidence" in bad.json()["error"]["fields"]


def test_feedback_on_image_and_boxes(serve_trained, trained_detector):
    serve_trained()
    client = APIClient()
    _, body = best_sample(client, trained_detector.samples)
    url = f"{URL}{body['id']}/feedback/"

    assert client.post(url, {"verdict": "correct", "min_confidence": 0.25}, format="json").status_code == 201
    relabel = client.post(url, {"verdict": "wrong", "box_index": 0, "correct_class": "triangle"}, format="json")
    assert relabel.status_code == 201, relabel.content
    assert relabel.json()["correct_class_id"] == 2 and relabel.json()["correct_class_name"] == "triangle"
    by_id = client.post(url, {"verdict": "wrong", "box_index": 0, "correct_class": "1"}, format="json")
    assert by_id.json()["correct_class_name"] == "square"

    out_of_range = client.post(url, {"verdict": "wrong", "box_index": 99}, format="json")
    assert out_of_range.status_code == 400 and out_of_range.json()["error"]["details"]["field"] == "box_index"
    for strange in ("hexagon", "²", "٣", "-1"):  # a superscript passes isdigit() but not int()
        unknown = client.post(url, {"verdict": "wrong", "box_index": 0, "correct_class": strange}, format="json")
        assert unknown.status_code == 400 and unknown.json()["error"]["details"]["field"] == "correct_class"
    on_image = client.post(url, {"verdict": "correct", "correct_class": "circle"}, format="json")
    assert on_image.status_code == 400
    assert client.post(url, {"verdict": "maybe"}, format="json").json()["error"]["fields"]["verdict"]

    feedback = Feedback.objects.filter(detection_id=body["id"]).order_by("created_at", "id")
    assert [(f.box_index, f.verdict, f.correct_class_name) for f in feedback] == [
        (None, "correct", ""),
        (0, "wrong", "triangle"),
        (0, "wrong", "square"),
    ]
    assert len(client.get(f"{URL}{body['id']}/").json()["feedback"]) == 3


# -- who sees what --------------------------------------------------------------------------------------
def test_listing_needs_login_and_shows_only_your_own(serve_detector, plain_user, admin_user, django_user_model):
    serve_detector(0)
    photo = image_bytes(synthetic_photo(64, 64))
    alice = APIClient()
    alice.force_authenticate(plain_user)
    bob = APIClient()
    bob.force_authenticate(django_user_model.objects.create_user("bob", password="pw-bob-12345"))
    mine = upload(alice, photo).json()["id"]
    upload(bob, photo)
    upload(APIClient(), photo)

    assert APIClient().get(URL).status_code == 401
    assert [d["id"] for d in alice.get(URL).json()["results"]] == [mine]
    staff = APIClient()
    staff.force_authenticate(admin_user)
    assert staff.get(URL).json()["count"] == 3
    assert Detection.objects.get(pk=mine).user == plain_user


def test_anonymous_predictions_are_throttled(serve_detector, settings):
    serve_detector(0)
    settings.API_ANON_RATE = "2/day"  # a daily window: no boundary falls inside the test
    photo = image_bytes(synthetic_photo(32, 32))
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"  # a fresh counter
    client = APIClient(REMOTE_ADDR=address)
    assert [upload(client, photo).status_code for _ in range(3)] == [201, 201, 429]
    refused = upload(client, photo)
    assert refused.json()["error"]["code"] == "throttled" and int(refused["Retry-After"]) > 0
    assert upload(APIClient(REMOTE_ADDR=address + "1"), photo).status_code == 201  # another client
    signed_in = APIClient(REMOTE_ADDR=address)
    signed_in.force_authenticate(get_user_model().objects.create_user("carol", password="pw-carol-1234"))
    assert upload(signed_in, photo).status_code == 201
    assert Detection.objects.count() == 4


# -- model info ---------------------------------------------------------------------------------------------
def test_model_info_for_both_kinds_and_the_compat_route(serve_detector, model_files, unique_name, settings):

    detector = serve_detector(0)
    tabular = VersionFactory(
        name=f"{unique_name}-tab", kind="tabular", files=model_files["tabular"][0], metrics={"f1": 0.9}, promoted=True
    )
    client = APIClient()

    info = client.get(f"/api/v1/models/{unique_name}/info/").json()
    assert info["kind"] == "detection"
    assert info["production"]["version"] == detector.version and info["production"]["label"] == "v1.0"
    assert info["class_names"] == ["circle", "square", "triangle"] and info["input_size"] == 64
    assert info["production"]["promoted_at"]
    assert client.get("/model/info").json() == info

    table = client.get(f"/api/v1/models/{unique_name}-tab/info/").json()
    assert table["production"]["metrics"] == {"f1": 0.9} and table["production"]["version"] == tabular.version
    assert table["n_features"] == 30 and table["feature_schema"][0]["name"] == "mean radius"
    assert client.get("/api/v1/models/nope/info/").status_code == 404


def test_every_endpoint_is_in_the_openapi_schema(admin_api):
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    import json

    paths = json.loads(schema.content)["paths"]
    for path in [
        "/api/v1/detections/",
        "/api/v1/detections/{id}/",
        "/api/v1/detections/{id}/annotated.png",
        "/api/v1/detections/{id}/heatmap.png",
        "/api/v1/detections/{id}/feedback/",
        "/api/v1/batches/",
        "/api/v1/batches/{id}/",
        "/api/v1/batches/{id}/results.json",
        "/api/v1/batches/{id}/results.csv",
        "/api/v1/models/{name}/info/",
        "/api/v1/tabular/predictions/",
        "/predict",
        "/model/info",
    ]:
        assert path in paths, path
    create = paths["/api/v1/detections/"]["post"]
    assert "multipart/form-data" in create["requestBody"]["content"]
    assert {"201", "400", "413", "503"} <= set(create["responses"])


@pytest.mark.django_db
def test_a_model_still_in_its_first_training_answers_503_naming_the_job(client, settings):

    settings.DEFAULT_DETECTION_MODEL = "not-trained-yet"
    job = TrainingJobFactory(kind="detection", model_name="not-trained-yet")
    upload = image_bytes(synthetic_photo())
    response = client.post("/api/v1/detections/", {"image": SimpleUploadedFile("a.png", upload, "image/png")})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "model_training"
    assert f"/training/jobs/{job.pk}/" in error["message"]
    job.status = "failed"
    job.save()
    gone = client.post("/api/v1/detections/", {"image": SimpleUploadedFile("a.png", upload, "image/png")})
    assert gone.status_code == 404
