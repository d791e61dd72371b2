"""The classification pages and the /predict route of a deployment configured for classification,
against the tiny real classifier (cat, dog, bird)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from backend.classification.models import Classification
from backend.serving.sources import Source
from mlops.tests.classifier_support import asset
from tests.web import ROOT, gunicorn_server

pytestmark = [pytest.mark.django_db(transaction=True)]

CLASSES = ["cat", "dog", "bird"]


def test_the_upload_page_names_the_production_version_and_its_classes(serve_classifier):
    version = serve_classifier()
    page = Client().get("/classify/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"(version {version.version})" in html and "classes: cat, dog, bird" in html
    assert json.loads(html.split('id="class-names" type="application/json">')[1].split("</script>")[0]) == CLASSES
    assert 'href="/classify/" class="active" aria-current="page"' in html
    assert 'data-api="/api/v1/classifications/"' in html


def test_the_upload_page_says_what_to_do_when_there_is_no_classifier(settings, unique_name):
    settings.DEFAULT_CLASSIFICATION_MODEL = unique_name
    html = Client().get("/classify/").content.decode()
    assert f"There is no model named <b>{unique_name}</b> yet" in html
    assert "register_model --kind classification" in html


def test_history_shows_this_browsers_classifications_only(serve_classifier):
    serve_classifier()
    mine, theirs = Client(), Client()
    for client, name in ((mine, "mine.jpg"), (theirs, "theirs.jpg")):
        client.get("/classify/")  # the page gives the visitor a session, as in a browser
        answer = client.post(
            "/api/v1/classifications/", {"image": SimpleUploadedFile(name, asset("bus.jpg").read_bytes())}
        )
        assert answer.status_code == 201, answer.content
    html = mine.get("/classify/history/").content.decode()
    assert "mine.jpg" in html and "theirs.jpg" not in html
    row = Classification.objects.get(filename="mine.jpg")
    assert f'data-feedback-url="/api/v1/classifications/{row.pk}/feedback/"' in html
    assert f'<b class="best">{row.class_name}</b>' in html
    assert "Nothing yet" in Client().get("/classify/history/").content.decode()


def test_predict_answers_with_the_detector_unless_configured_otherwise(serve_classifier):
    serve_classifier()
    assert settings.COMPAT_PREDICT_KIND == "detection"
    answer = APIClient().post("/predict", {"file": SimpleUploadedFile("bus.jpg", asset("bus.jpg").read_bytes())})
    # The default detector is not registered in this test: /predict looked for it, not for the classifier.
    assert answer.status_code == 404 and settings.DEFAULT_DETECTION_MODEL in answer.json()["error"]["message"]
    assert not Classification.objects.exists()


def test_a_client_of_a_classifier_service_works_against_predict(serve_classifier, unique_name, tmp_path):
    """What a client of the dandelion-vs-grass service sends and reads: field `file`; `prediction`, `confidence`."""
    version = serve_classifier()
    env = {"COMPAT_PREDICT_KIND": "classification", "DEFAULT_CLASSIFICATION_MODEL": unique_name}
    with gunicorn_server(tmp_path / "gunicorn.log", env=env) as web:
        answers = {}
        for name in ("bus.jpg", "zidane.jpg"):
            with asset(name).open("rb") as handle:
                answer = requests.post(f"{web.url}/predict", files={"file": (name, handle, "image/jpeg")}, timeout=60)
            assert answer.status_code == 200, answer.text
            answers[name] = answer.json()
        info = requests.get(f"{web.url}/model/info", timeout=30).json()
        refused = requests.post(f"{web.url}/predict", files={"file": ("x.jpg", b"not an image")}, timeout=30)
    for name, body in answers.items():
        row = Classification.objects.get(pk=body["id"])
        assert body["prediction"] == row.class_name == body["classes"][0]["class_name"]
        assert body["prediction"] in CLASSES
        assert body["confidence"] == pytest.approx(row.confidence) == body["classes"][0]["probability"]
        assert (row.filename, row.source, row.model_version_id) == (name, Source.COMPAT, version.pk)
        assert body["model"]["version"] == version.version
    assert info["name"] == unique_name and info["class_names"] == CLASSES
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_image"


def test_an_unknown_compat_kind_stops_the_start():
    env = {**os.environ, "COMPAT_PREDICT_KIND": "segmentation"}
    code = "import django; django.setup()"
    started = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert started.returncode != 0
    assert "COMPAT_PREDICT_KIND must be detection or classification, not 'segmentation'" in started.stderr
