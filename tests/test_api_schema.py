"""The API keeps to its own OpenAPI schema: schemathesis against /api/schema/, as an outsider runs it.

The real web server (gunicorn, as the Procfile runs it) on the test database, with a real row behind
every id; schemathesis' own engine (what `st run --checks all` runs: examples, coverage, fuzzing and
stateful phases, every check) with a bounded number of cases per operation and a fixed seed; once
anonymous and once as a staff user with a token. Any 5xx, or an answer the schema does not describe,
fails the test with the request to reproduce it. docs/api.md#schema-tests says what is left out and why.
"""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis import engine
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine import events

from backend.alerting.models import Alert, AlertRule
from backend.alerting.services.evaluation import evaluate_rules
from backend.monitoring.models import DriftReport
from backend.registry.models import RegisteredModel
from tests.factories import TrainingJobFactory, VersionFactory
from tests.support import image_bytes, synthetic_photo
from tests.web import gunicorn_server

pytestmark = [pytest.mark.django_db(transaction=True)]

# Cases per operation and phase (API_SCHEMA_EXAMPLES=100 for a longer hunt; the seed keeps a run repeatable).
EXAMPLES = int(os.environ.get("API_SCHEMA_EXAMPLES", "25"))
SEED = int(os.environ.get("API_SCHEMA_SEED", "20261201"))
PICTURE = image_bytes(synthetic_photo(64, 48))

# A schema-valid request may still be refused for content no schema can describe: the bytes of a picture,
# a model's feature schema, the boxes of one detection, the datasets on this machine. Such a 400, with one
# of these codes, is not "a schema-valid request rejected" (ST202); a 400 with any other code still is.
CONTENT_REFUSALS = {
    "POST /api/v1/detections/": {"invalid_image", "wrong_model_kind"},
    "POST /predict": {"invalid_image", "wrong_model_kind"},
    "POST /api/v1/batches/": {"invalid_image", "no_images", "wrong_model_kind"},
    "POST /api/v1/tabular/predictions/": {"invalid_record", "wrong_model_kind"},
    "POST /api/v1/detections/{id}/feedback/": {"invalid_feedback"},
    # top_k past the classes of the model that answers: a bound only the model knows.
    "POST /api/v1/classifications/": {"invalid_image", "wrong_model_kind", "invalid_parameter"},
    "POST /api/v1/classifications/{id}/feedback/": {"invalid_feedback"},
    "POST /api/v1/classifications/batches/": {"invalid_image", "no_images", "wrong_model_kind", "invalid_parameter"},
}
JOB_REQUEST_FIELDS = {"dataset", "model_name", "params"}  # checked against the machine by check_job_request


@pytest.fixture
def api_rows(serve_detector, serve_tabular, serve_classifier, model_files, staff_user, unique_name, settings, eager):
    """A row behind every id the API takes: models, a detection, a classification, a batch, a job, an alert,
    a drift report."""
    serve_tabular()
    classifier = f"{unique_name}-classifier"
    serve_classifier(name=classifier)
    settings.DEFAULT_CLASSIFICATION_MODEL = classifier
    detector = f"{unique_name}-detector"
    serve_detector(name=detector)
    settings.DEFAULT_DETECTION_MODEL = detector
    # Promote, approve, stage and roll back act on a model of their own (two versions), so whatever
    # schemathesis sends them never changes the models that answer predictions.
    registry_target = f"{unique_name}-registry"
    for index in (0, 1):
        VersionFactory(name=registry_target, kind="tabular", files=model_files["tabular"][index], promoted=index == 0)
    target = RegisteredModel.objects.get(name=registry_target)
    staff_user.user_permissions.add(Permission.objects.get(codename="promote_modelversion"))

    client = APIClient()
    detection = client.post("/api/v1/detections/", {"image": ContentFile(PICTURE, name="p.png")})
    batch = client.post("/api/v1/batches/", {"files": [ContentFile(PICTURE, name="p.png")]})  # runs now: eager
    classification = client.post("/api/v1/classifications/", {"image": ContentFile(PICTURE, name="p.png")})
    classified = client.post("/api/v1/classifications/batches/", {"files": [ContentFile(PICTURE, name="p.png")]})
    statuses = (detection.status_code, batch.status_code, classification.status_code, classified.status_code)
    assert statuses == (201, 202, 201, 202), (detection.content, batch.content, classification.content, classified)
    AlertRule.objects.create(name="disk", kind="disk_free", comparison="<", threshold=101)
    evaluate_rules(kinds=["disk_free"])
    report = DriftReport.objects.create(model=target, version=target.production_version, status=DriftReport.Status.OK)
    report.html.save("report.html", ContentFile(b"<html><body>No drift.</body></html>"))
    return {
        "token": Token.objects.create(user=staff_user).key,
        "ids": {
            "/api/v1/detections/{id}": {"id": detection.json()["id"]},
            "/api/v1/batches/{id}": {"id": batch.json()["id"]},
            "/api/v1/classifications/{id}": {"id": classification.json()["id"]},
            "/api/v1/classifications/batches/{id}": {"id": classified.json()["id"]},
            "/api/v1/alerts/{id}": {"id": Alert.objects.get(rule__name="disk").pk},
            "/api/v1/drift-reports/{id}": {"id": report.pk},
            "/api/v1/training-jobs/{id}": {"id": TrainingJobFactory().pk},
            "/api/v1/models/{name}": {"name": registry_target, "version": 2},
        },
        "env": {
            "DEFAULT_DETECTION_MODEL": detector,
            "DEFAULT_TABULAR_MODEL": settings.DEFAULT_TABULAR_MODEL,
            "DEFAULT_CLASSIFICATION_MODEL": classifier,
        },
    }


@pytest.fixture
def web(api_rows, tmp_path):
    env = {
        **api_rows["env"],
        "API_ANON_RATE": "100000/min",
        "API_USER_RATE": "100000/min",
        "API_READBACK_RATE": "100000/min",
        # Batches and training jobs go to a queue no worker reads: schemathesis never starts real work.
        "CELERY_BROKER_URL": os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/15",
    }
    with gunicorn_server(tmp_path / "gunicorn.log", env=env) as server:
        yield server


def api_schema(url: str, rows: dict, caller: str) -> schemathesis.BaseSchema:
    """What `st run URL --checks all -n EXAMPLES --seed SEED` does, with real ids and the caller's token."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},  # nothing written under .schemathesis/, nothing replayed
            "headers": {"Authorization": f"Token {rows['token']}"} if caller == "staff" else {},
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "operations": [
                {"include-path-regex": "^" + prefix.replace("{", "\\{").replace("}", "\\}"), "parameters": ids}
                for prefix, ids in rows["ids"].items()
            ],
        }
    )
    schema = schemathesis.openapi.from_url(f"{url}/api/schema/", config=config)
    schema.hook(filter_failure)
    return schema


def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure but a content refusal answering a schema-valid request (see CONTENT_REFUSALS), and
    an "invalid" multipart body that was valid on the wire."""
    if failure.code == "ST201":
        return not _sent_nothing_invalid(case)
    if failure.code != "ST202" or response.status_code != 400:
        return True
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return True  # not the API's error body: nothing to excuse
    label = case.operation.label
    if label == "POST /api/v1/training-jobs/":
        return not (error.get("code") == "validation_error" and set(error.get("fields", {})) <= JOB_REQUEST_FIELDS)
    return error.get("code") not in CONTENT_REFUSALS.get(label, set())


def _sent_nothing_invalid(case) -> bool:
    """Whether every invalid value of a multipart body was an empty list or object: such a value puts no
    part on the wire, so the server saw an optional field left out (schemathesis 4.32 checks that only for
    bodies without a file part)."""
    mutations = getattr(case.meta.phase.data, "mutations", None) if case.meta is not None else None
    if case.media_type != "multipart/form-data" or not mutations or not isinstance(case.body, dict):
        return False
    return all(
        mutation.parameter_location == ParameterLocation.BODY
        and len(mutation.path) == 1
        and case.body.get(mutation.path[0]) in ([], {})
        for mutation in mutations
    )


@schemathesis.deserializer("image/png", "image/jpeg")
def _picture(ctx, response):
    """A picture must be a picture of the type it says; its schema (a binary string) is checked on a summary."""
    declared = response.headers["content-type"][0].split(";")[0].split("/")[1]
    with Image.open(io.BytesIO(response.content)) as picture:
        picture.verify()
        if picture.format.lower() != declared:
            raise ValueError(f"a {picture.format} picture answered as image/{declared}")
        return f"{picture.format} {picture.width}x{picture.height}"


@schemathesis.deserializer("text/csv", "text/html")
def _text(ctx, response):
    if response.headers["content-type"][0].startswith("text/csv"):
        list(csv.reader(io.StringIO(response.text)))  # raises on a malformed table
    return response.text


def failures_of(schema) -> dict[tuple, str]:
    """Run schemathesis' engine and describe each distinct failure, by (operation, code, status)."""
    found: dict[tuple, str] = {}
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for case_id, checks in recorder.checks.items():
                interaction = recorder.interactions.get(case_id)
                answer = interaction.response if interaction is not None else None
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    status = answer.status_code if answer is not None else None
                    found.setdefault(
                        (failure.operation or recorder.label, failure.code, status),
                        f"{failure.operation or recorder.label}: {failure.code} {failure.title}\n{failure.message}\n"
                        f"[{status}] {answer.content[:300] if answer is not None else b''!r}\n"
                        f"{check.failure_info.code_sample}",
                    )
        elif isinstance(event, events.NonFatalError):  # e.g. a case it could not build or send
            found.setdefault((event.label, type(event.value).__name__), f"{event.label}: {event.info}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return found


@pytest.mark.parametrize("caller", ["anonymous", "staff"])
def test_the_api_answers_as_its_schema_says(web, api_rows, caller):
    found = failures_of(api_schema(web.url, api_rows, caller))
    assert not found, f"{len(found)} failures:\n\n" + "\n\n".join(found.values())
