"""A client generated from the live schema works, as an outsider would generate and use it.

openapi-python-client reads /api/schema/ from the real web server (gunicorn, on the test database) and
writes a Python package; the test imports it and, through it only, uploads a picture, reads the detection
back, scores two records and promotes a version with a token. The generator lives in a virtualenv of its
own (`make client-generator`: it pins a typer requirements.txt cannot hold); the Makefile names its
executable in OPENAPI_PYTHON_CLIENT. The package it writes needs only httpx and attrs.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from rest_framework.authtoken.models import Token

from backend.registry.models import Deployment, RegisteredModel
from tests.support import image_bytes, synthetic_photo
from tests.web import gunicorn_server

pytestmark = [pytest.mark.django_db(transaction=True)]

GENERATOR = "OPENAPI_PYTHON_CLIENT"
PACKAGE = "modelyard_client"
# The generator reads no answer but JSON, text and octet-streams: the pictures are bytes like any other.
GENERATOR_CONFIG = {
    "content_type_overrides": {"image/png": "application/octet-stream", "image/jpeg": "application/octet-stream"}
}


def generator_executable() -> Path:
    """The generator `make client-generator` installs; without make (no OPENAPI_PYTHON_CLIENT), a skip."""
    named = os.environ.get(GENERATOR)
    if not named:
        pytest.skip(
            f"{GENERATOR} is not set: `make test` sets it and builds the generator's own virtualenv "
            f"(`make client-generator`); by hand, {GENERATOR}=<that venv>/bin/openapi-python-client"
        )
    executable = Path(named)
    assert os.access(executable, os.X_OK), f"{GENERATOR}={named} is no executable: run `make client-generator`"
    return executable


def generate_client(executable: Path, schema_url: str, directory: Path) -> Path:
    """Generate the client package from the schema at `schema_url` into `directory`; any warning fails it
    (an operation or model the generator left out, or could not read)."""
    config = directory / "generator.json"
    config.write_text(json.dumps(GENERATOR_CONFIG))
    # Its post hooks (ruff) come from its own virtualenv, not whichever ruff PATH finds first.
    env = {**os.environ, "PATH": f"{executable.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [
        str(executable), "generate", "--url", schema_url, "--meta", "none", "--config", str(config),
        "--output-path", str(directory / PACKAGE), "--fail-on-warning",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"openapi-python-client failed:\n{result.stdout}\n{result.stderr}"
    return directory


@pytest.fixture(scope="session")
def generator() -> Path:
    """Session-scoped and the test's first argument: without the generator, skip before any model is built."""
    return generator_executable()


@pytest.fixture
def client_package(generator, web, tmp_path, monkeypatch) -> Iterator[ModuleType]:
    """The client generated from the live /api/schema/, imported (and forgotten again afterwards)."""
    monkeypatch.syspath_prepend(str(generate_client(generator, f"{web.url}/api/schema/", tmp_path)))
    yield importlib.import_module(PACKAGE)
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def operation(name: str) -> ModuleType:
    """One operation of the generated client (its sync, sync_detailed, asyncio...), by operationId."""
    return importlib.import_module(f"{PACKAGE}.api.api.{name}")


@pytest.fixture
def served(serve_detector, register_detector, serve_tabular, model_files, admin_user, unique_name):
    """A detector (version 1 in production, version 2 registered), a tabular model and an admin's token."""
    detector = f"{unique_name}-detector"
    serve_detector(0, name=detector)
    register_detector(1, name=detector)
    serve_tabular(0)
    return {
        "detector": detector,
        "tabular": unique_name,
        "token": Token.objects.create(user=admin_user).key,
        "env": {"DEFAULT_DETECTION_MODEL": detector, "DEFAULT_TABULAR_MODEL": unique_name},
    }


@pytest.fixture
def web(served, tmp_path):
    with gunicorn_server(tmp_path / "gunicorn.log", env=served["env"]) as server:
        yield server


def expected_probabilities(files, records: list[dict]) -> list[dict[str, float]]:
    """What the tabular model itself says of `records`, class name -> probability."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(files.model))
    names = [feature["name"] for feature in files.feature_schema]
    positive = booster.predict(
        xgb.DMatrix([[record[name] for name in names] for record in records], feature_names=names)
    )
    negative_class, positive_class = files.class_names
    return [{negative_class: 1 - float(p), positive_class: float(p)} for p in positive]


def test_a_generated_client_detects_scores_and_promotes(
    generator, web, served, client_package, model_files, breast_cancer
):
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    anonymous = client_package.Client(base_url=web.url, raise_on_unexpected_status=True)
    admin = client_package.AuthenticatedClient(
        base_url=web.url, token=served["token"], prefix="Token", raise_on_unexpected_status=True
    )

    # Anonymous callers may detect (the generated signatures ask for an AuthenticatedClient all the same).
    picture = types.File(io.BytesIO(image_bytes(synthetic_photo(64, 48))), file_name="p.png", mime_type="image/png")
    created = operation("detections_create").sync(client=anonymous, body=models.DetectionRequest(picture, conf=0.0))
    assert isinstance(created, models.Detection), created
    assert (created.model.name, created.model.version) == (served["detector"], 1)
    assert (created.image.width, created.image.height) == (64, 48)
    assert created.boxes, "with conf=0 the untrained detector keeps every box it proposes"
    assert all(isinstance(box, models.Box) and len(box.xyxy) == 4 for box in created.boxes)
    assert {box.class_name for box in created.boxes} <= set(model_files["detectors"][0].class_names)

    read_back = operation("api_v1_detections_retrieve").sync(created.id, client=anonymous)
    assert isinstance(read_back, models.Detection), read_back
    assert (read_back.id, read_back.model.version) == (created.id, 1)
    assert [box.to_dict() for box in read_back.boxes] == [box.to_dict() for box in created.boxes]

    records = breast_cancer.head(2).to_dict("records")
    request = models.ScoreRequest(records=[models.ScoreRequestRecordsItem.from_dict(record) for record in records])
    scored = operation("api_v1_tabular_predictions_create").sync(client=anonymous, body=request)
    assert isinstance(scored, models.ScoreResponse), scored
    assert (scored.model.name, scored.model.version) == (served["tabular"], 1)
    assert [prediction.record for prediction in scored.predictions] == [0, 1]
    for prediction, expected in zip(
        scored.predictions, expected_probabilities(model_files["tabular"][0], records), strict=True
    ):
        assert prediction.probabilities.to_dict() == pytest.approx(expected, abs=1e-5)
        assert prediction.label == max(expected, key=expected.get)

    promote = operation("api_v1_models_versions_promote_create")
    promoted = promote.sync(served["detector"], 2, client=admin, body=models.Reason(reason="generated client"))
    assert isinstance(promoted, models.Deployment), promoted
    assert (promoted.succeeded, promoted.actor, promoted.reason) == (True, "root", "generated client")
    assert RegisteredModel.objects.get(name=served["detector"]).production_version.version == 2
    last = Deployment.objects.filter(model__name=served["detector"]).latest("created_at")
    assert (last.to_version.version, last.actor.username, last.reason) == (2, "root", "generated client")
