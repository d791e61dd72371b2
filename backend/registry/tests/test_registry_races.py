"""Registry races: a stale copy of a version, a rollback whose target moved, a confirmation page that
is older than production. What was confirmed runs, or nothing runs and the refusal says why."""

import re

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from backend.registry import services
from backend.registry.models import Deployment, ModelVersion, RegisteredModel
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

CHANGELIST = "/admin/registry/modelversion/"


@pytest.fixture
def promoter():
    user = UserFactory(username="promoter", staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["promote_modelversion", "view_modelversion", "view_registeredmodel"])
    )
    return user


def production_of(model: RegisteredModel) -> ModelVersion | None:
    return ModelVersion.objects.filter(model=model, status=ModelVersion.Status.PRODUCTION).first()


def hidden_fields(page: str) -> dict[str, list[str]]:
    """The hidden inputs of the confirmation form, as a browser would send them back."""
    fields: dict[str, list[str]] = {}
    for tag in re.findall(r"<input[^>]*>", page):
        if 'type="hidden"' not in tag:
            continue
        name, value = re.search(r'name="([^"]*)"', tag), re.search(r'value="([^"]*)"', tag)
        if name and name.group(1) != "csrfmiddlewaretoken":
            fields.setdefault(name.group(1), []).append(value.group(1) if value else "")
    return fields


def test_staging_a_stale_copy_of_the_production_version_is_refused(register_tabular):
    version = register_tabular(0)
    stale = ModelVersion.objects.get(pk=version.pk)  # read while it was a candidate
    services.promote_version(version, reason="meanwhile")

    with pytest.raises(services.RegistryConflict, match="in production"):
        services.stage_version(stale)
    assert production_of(version.model).pk == version.pk
    assert not ModelVersion.objects.filter(model=version.model, status=ModelVersion.Status.STAGING).exists()


def test_staging_still_replaces_the_previous_staging_version(register_tabular):
    first, second = register_tabular(0), register_tabular(1)
    services.stage_version(first)
    staged = services.stage_version(ModelVersion.objects.get(pk=second.pk))
    assert staged.status == ModelVersion.Status.STAGING
    statuses = dict(ModelVersion.objects.filter(model=first.model).values_list("pk", "status"))
    assert statuses == {first.pk: "candidate", second.pk: "staging"}


def test_a_rollback_refuses_when_production_moved_during_its_smoke_test(register_tabular, monkeypatch):
    v1, v2, v3 = register_tabular(0), register_tabular(1), register_tabular(0)
    services.promote_version(v1)
    services.promote_version(v2)  # a rollback now means: back from v2 to v1
    smoke_test_version = services.smoke_test_version
    slipped_in = []

    def promotion_slips_in(version):
        if not slipped_in:
            slipped_in.append(v3)
            services.promote_version(ModelVersion.objects.get(pk=v3.pk), reason="meanwhile")
        return smoke_test_version(version)

    monkeypatch.setattr(services, "smoke_test_version", promotion_slips_in)
    with pytest.raises(services.RegistryConflict) as refused:
        services.rollback_model(v1.model, reason="v2 is bad")
    assert refused.value.code == "production_moved"
    # v3 was promoted after the rollback was decided: it stays, and v1 did not jump over it.
    assert production_of(v1.model).pk == v3.pk
    assert not Deployment.objects.filter(model=v1.model, action=Deployment.Action.ROLLBACK).exists()


def test_a_pinned_rollback_runs_only_from_and_to_what_was_confirmed(register_tabular):
    v1, v2, v3 = register_tabular(0), register_tabular(1), register_tabular(0)
    services.promote_version(v1)
    services.promote_version(v2)
    services.promote_version(v3)
    model = v1.model

    with pytest.raises(services.RegistryConflict, match="production moved") as stale:
        services.rollback_model(model, expected_from=v2, expected_to=v1)
    assert (stale.value.status, stale.value.code) == (409, "production_moved")
    with pytest.raises(services.RegistryConflict, match="production moved"):
        services.rollback_model(model, expected_from=v3, expected_to=v1)  # from is right, the target is not
    assert production_of(model).pk == v3.pk

    deployment = services.rollback_model(model, expected_from=v3, expected_to=v2, reason="confirmed")
    assert (deployment.from_version_id, deployment.to_version_id) == (v3.pk, v2.pk)
    assert production_of(model).pk == v2.pk


def test_a_pinned_promotion_refuses_when_production_moved(register_tabular):
    v1, v2, v3 = register_tabular(0), register_tabular(1), register_tabular(0)
    services.promote_version(v1)
    with pytest.raises(services.RegistryConflict, match="production moved"):
        services.promote_version(v2, expected_from=None)  # the caller saw no production version
    services.promote_version(v3, reason="meanwhile")
    with pytest.raises(services.RegistryConflict, match="production moved"):
        services.promote_version(v2, expected_from=v1)
    assert production_of(v1.model).pk == v3.pk
    assert services.promote_version(v2, expected_from=v3).from_version_id == v3.pk


def test_the_api_rollback_checks_the_version_it_rolls_back_from(register_tabular, promoter):
    v1, v2, v3 = register_tabular(0), register_tabular(1), register_tabular(0)
    for version in (v1, v2, v3):
        services.promote_version(version)
    api = APIClient()
    api.force_authenticate(promoter)
    url = f"/api/v1/models/{v1.model.name}/rollback/"

    stale = api.post(url, {"reason": "v2 is bad", "from_version": v2.version}, format="json")
    assert stale.status_code == 409, stale.content
    assert stale.json()["error"]["code"] == "production_moved"
    assert "moved" in stale.json()["error"]["message"]
    assert production_of(v1.model).pk == v3.pk

    missing = api.post(url, {"from_version": 99}, format="json")
    assert missing.status_code == 404
    bad = api.post(url, {"from_version": "three"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["from_version"]

    done = api.post(url, {"reason": "v3 is bad", "from_version": v3.version, "to_version": v2.version}, format="json")
    assert done.status_code == 200, done.content
    assert (done.json()["from_version"]["version"], done.json()["to_version"]["version"]) == (3, 2)


def test_admin_rollback_runs_what_was_confirmed_or_nothing(register_tabular, promoter, client):
    v1, v2, v3 = register_tabular(0), register_tabular(1), register_tabular(0)
    services.promote_version(v1)
    services.promote_version(v2)
    client.force_login(promoter)

    shown = client.post(CHANGELIST, {"action": "roll_back", "_selected_action": [v2.pk]})
    assert shown.status_code == 200
    page = shown.content.decode()
    assert "v1.0" in page and "v1.1" in page  # roll back from v1.1 to v1.0
    form = hidden_fields(page)

    # Someone promotes v3 while the page is open; confirming must not roll v3 back to v2.
    services.promote_version(ModelVersion.objects.get(pk=v3.pk), reason="meanwhile")
    refused = client.post(CHANGELIST, {**form, "reason": "v1.1 is bad"}, follow=True)
    assert refused.status_code == 200
    assert production_of(v1.model).pk == v3.pk
    assert not Deployment.objects.filter(model=v1.model, action=Deployment.Action.ROLLBACK).exists()
    text = refused.content.decode()
    assert "Refused" in text and "production moved meanwhile" in text

    # A fresh confirmation page shows the new state, and confirming it runs exactly that.
    form = hidden_fields(client.post(CHANGELIST, {"action": "roll_back", "_selected_action": [v3.pk]}).content.decode())
    done = client.post(CHANGELIST, {**form, "reason": "v1.2 is bad"}, follow=True)
    assert f"rolled back to {v2}" in done.content.decode()
    rollback = Deployment.objects.get(model=v1.model, action=Deployment.Action.ROLLBACK)
    assert (rollback.from_version_id, rollback.to_version_id, rollback.actor) == (v3.pk, v2.pk, promoter)


def test_admin_promotion_runs_over_the_production_version_that_was_shown(register_tabular, promoter, client):
    v1, v2, v3 = register_tabular(0), register_tabular(1), register_tabular(0)
    services.promote_version(v1)
    client.force_login(promoter)
    shown = client.post(CHANGELIST, {"action": "promote_to_production", "_selected_action": [v3.pk]})
    form = hidden_fields(shown.content.decode())

    services.promote_version(ModelVersion.objects.get(pk=v2.pk), reason="meanwhile")
    refused = client.post(CHANGELIST, {**form, "reason": "better than v1.0"}, follow=True)
    assert production_of(v1.model).pk == v2.pk
    assert "Refused" in refused.content.decode() and "production moved meanwhile" in refused.content.decode()
