"""Reconcilers: a serving generation whose cache write failed, or that stands above a restored
database, is repaired, and a late announcement never lowers it; alias and retention runs carry on
past a model the store refuses."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from backend.registry.models import Deployment, ModelVersion, RegisteredModel
from backend.registry.services import promote_version
from backend.registry.tasks import cleanup_versions, reconcile_aliases
from backend.serving.generation import reconcile_generations, serving_generation, set_serving_generation
from tests.factories import VersionFactory

pytestmark = [pytest.mark.django_db(transaction=True)]  # the serving holder loads on its own connection


def test_a_stale_cached_generation_is_repaired_and_the_new_version_served(serve_tabular, model_files, unique_name):
    first = serve_tabular(0)
    record = {"records": [{f["name"]: f["mean"] for f in first.model.feature_schema}]}
    client = APIClient()
    assert client.post("/api/v1/tabular/predictions/", record, format="json").json()["model"]["version"] == 1
    old_generation = serving_generation(unique_name)

    second = VersionFactory(name=unique_name, kind="tabular", files=model_files["tabular"][1])
    promote_version(second)
    cache.set(f"serving-generation:{unique_name}", old_generation, timeout=None)  # as if the write had failed
    assert client.post("/api/v1/tabular/predictions/", record, format="json").json()["model"]["version"] == 1

    latest = Deployment.objects.filter(model__name=unique_name).latest("id").pk
    assert reconcile_generations() == {unique_name: {"was": old_generation, "now": latest}}
    assert client.post("/api/v1/tabular/predictions/", record, format="json").json()["model"]["version"] == 2
    assert reconcile_generations() == {}


def test_an_announcement_arriving_late_does_not_put_the_generation_back(serve_tabular, model_files, unique_name):
    serve_tabular(0)
    promote_version(VersionFactory(name=unique_name, kind="tabular", files=model_files["tabular"][1]))
    latest = serving_generation(unique_name)
    set_serving_generation(unique_name, latest - 1)  # the earlier promotion's write, delivered last
    assert serving_generation(unique_name) == latest
    set_serving_generation(unique_name, latest + 5)
    assert serving_generation(unique_name) == latest + 5


def test_a_generation_above_a_restored_database_is_put_back(serve_tabular, model_files, unique_name):
    first = serve_tabular(0)
    record = {"records": [{f["name"]: f["mean"] for f in first.model.feature_schema}]}
    client = APIClient()
    truth = serving_generation(unique_name)
    # As after restoring a backup taken before later promotions: the cache remembers a higher id.
    cache.set(f"serving-generation:{unique_name}", truth + 1000, timeout=None)
    assert reconcile_generations() == {unique_name: {"was": truth + 1000, "now": truth}}
    assert reconcile_generations() == {}

    promote_version(VersionFactory(name=unique_name, kind="tabular", files=model_files["tabular"][1]))
    assert client.post("/api/v1/tabular/predictions/", record, format="json").json()["model"]["version"] == 2


def test_alias_and_retention_runs_carry_on_past_a_failing_model(register_tabular, unique_name):
    register_tabular(0)
    ghost = RegisteredModel.objects.create(name=f"{unique_name}-ghost", kind="tabular")  # unknown to MLflow
    ModelVersion.objects.create(model=ghost, version=7, status=ModelVersion.Status.PRODUCTION)
    aliases = reconcile_aliases()
    assert "error" in aliases[f"{unique_name}-ghost"]
    assert aliases[unique_name] == {"production": None, "staging": None}
    retention = cleanup_versions()
    assert retention[unique_name] == []
