"""The upload and history pages as a browser session sees them (the browser test drives the scripts)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from backend.detection.models import Detection
from tests.factories import VersionFactory
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_upload_page_names_the_production_model_and_sets_up_the_session(serve_detector):
    version = serve_detector(0)
    client = Client()
    page = client.get("/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f"{version.model.name}</b> v1.0" in html and "circle, square, triangle" in html
    assert 'id="dropzone"' in html and 'id="threshold"' in html and "js/detect.js" in html
    assert "csrftoken" in page.cookies and client.session.session_key
    for link in ("/history/", "/scoring/", "/admin/", "/api/docs/"):
        assert f'href="{link}"' in html


def test_upload_page_says_when_nothing_is_in_production(model_files, unique_name, settings):
    settings.DEFAULT_DETECTION_MODEL = unique_name
    assert "There is no model named" in Client().get("/").content.decode()
    files = model_files["detectors"][0]
    VersionFactory(name=unique_name, kind="detection", files=files, metrics={})
    assert "No version of" in Client().get("/").content.decode()


def test_history_shows_this_browser_s_detections_with_feedback_controls(serve_detector):
    serve_detector(0)
    mine, other = Client(), Client()
    mine.get("/")
    other.get("/")
    photo = image_bytes(synthetic_photo(64, 48))
    answer = mine.post(
        "/api/v1/detections/", {"image": SimpleUploadedFile("holiday.png", photo)}, HTTP_X_MODELYARD_CLIENT="web"
    ).json()
    detection = Detection.objects.get(pk=answer["id"])
    assert detection.source == "web" and detection.session_key == mine.session.session_key

    html = mine.get("/history/").content.decode()
    assert "holiday.png" in html
    assert f"/api/v1/detections/{answer['id']}/thumbnail.jpg" in html
    assert f"/api/v1/detections/{answer['id']}/feedback/" in html
    assert 'data-verdict="correct"' in html and 'data-verdict="wrong"' in html
    assert "holiday.png" not in other.get("/history/").content.decode()
    assert 'id="history-empty"' in other.get("/history/").content.decode()


def test_admin_lists_the_prediction_logs(serve_detector, model_files, unique_name, admin_user):
    from backend.scoring.models import TabularPrediction

    serve_detector(0)
    tabular = model_files["tabular"][0]
    VersionFactory(name=f"{unique_name}-tab", kind="tabular", files=tabular, metrics={}, promoted=True)
    client = Client()
    client.force_login(admin_user)
    answer = client.post("/api/v1/detections/", {"image": SimpleUploadedFile("a.png", image_bytes(synthetic_photo()))})
    detection_id = answer.json()["id"]
    client.post(f"/api/v1/detections/{detection_id}/feedback/", {"verdict": "correct"}, content_type="application/json")
    client.post(
        "/api/v1/tabular/predictions/",
        {"records": [{f["name"]: f["mean"] for f in tabular.feature_schema}], "model": f"{unique_name}-tab"},
        content_type="application/json",
    )
    assert TabularPrediction.objects.count() == 1

    for url in (
        "/admin/detection/detection/",
        f"/admin/detection/detection/{detection_id}/change/",
        "/admin/detection/feedback/",
        "/admin/detection/batch/",
        "/admin/scoring/tabularprediction/",
        f"/admin/scoring/tabularprediction/{TabularPrediction.objects.get().pk}/change/",
    ):
        page = client.get(url)
        assert page.status_code == 200, url
    listing = client.get("/admin/detection/detection/").content.decode()
    assert f"/api/v1/detections/{detection_id}/thumbnail.jpg" in listing
    assert client.get("/admin/detection/detection/add/").status_code == 403
