"""What serving reports to /metrics: the generation each load serves, and versions that fail to load."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from backend.registry.models import Deployment
from backend.registry.services import rollback_model
from mlops.registry.artifacts import local_path_of
from tests.factories import VersionFactory
from tests.helpers import Scrape
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db(transaction=True)]


def detect(client: APIClient) -> dict:
    photo = SimpleUploadedFile("x.png", image_bytes(synthetic_photo(64, 48)))
    response = client.post("/api/v1/detections/", {"image": photo})
    assert response.status_code == 201, response.content
    return response.json()


def latest_deployment(name: str) -> int:
    return Deployment.objects.filter(model__name=name, succeeded=True).latest("id").pk


def test_the_generation_follows_loads_and_a_failed_load_is_counted(serve_detector, model_files, unique_name):
    old = serve_detector(0)
    client = APIClient()
    detect(client)
    assert Scrape(client).value("modelyard_serving_generation", model=unique_name) == latest_deployment(unique_name)

    new = VersionFactory(
        name=unique_name, kind="detection", files=model_files["detectors"][1], metrics={}, promoted=True
    )  # passes its smoke test
    stored = local_path_of(new.artifacts["onnx"]["uri"])
    stored.write_bytes(b"not an onnx model any more" + stored.read_bytes()[:100])  # corrupted after promotion
    before = Scrape(client)

    assert detect(client)["model"]["version"] == old.version  # the old version keeps serving

    after = Scrape(client)
    failed = {"model": unique_name, "version": str(new.version)}
    name = "modelyard_model_load_failures_total"
    assert after.value(name, **failed) - before.value(name, **failed) == 1
    generation = {"model": unique_name}
    assert after.value("modelyard_serving_generation", **generation) == before.value(
        "modelyard_serving_generation", **generation
    )  # still the old version's

    rollback_model(new.model, reason="bad artifact")
    detect(client)
    assert Scrape(client).value("modelyard_serving_generation", model=unique_name) == latest_deployment(unique_name)
