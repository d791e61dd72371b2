"""The registry API and admin: who may do what, and what they see."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from backend.registry.models import Deployment, ModelVersion

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def promoter(django_user_model):
    user = django_user_model.objects.create_user("promoter", password="pw-promoter-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="promote_modelversion"))
    return user


@pytest.fixture
def second_promoter(django_user_model):
    user = django_user_model.objects.create_user("reviewer", password="pw-reviewer-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="promote_modelversion"))
    return user


def test_permissions_are_enforced_on_the_api(register_tabular, plain_user, staff_user, promoter):
    version = register_tabular(0)
    name = version.model.name
    promote_url = f"/api/v1/models/{name}/versions/1/promote/"

    anonymous = APIClient()
    assert anonymous.get("/api/v1/models/").status_code == 401
    assert anonymous.post(promote_url).status_code == 401

    reader = client_for(plain_user)
    listing = reader.get("/api/v1/models/")
    assert listing.status_code == 200
    assert [model["name"] for model in listing.json()["results"]] == [name]
    denied = reader.post(promote_url, {"reason": "x"}, format="json")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"

    assert client_for(staff_user).post(promote_url, {}, format="json").status_code == 403
    assert client_for(plain_user).post(f"/api/v1/models/{name}/rollback/").status_code == 403
    assert ModelVersion.objects.get(pk=version.pk).status == "candidate"

    allowed = client_for(promoter).post(promote_url, {"reason": "release"}, format="json")
    assert allowed.status_code == 200, allowed.content
    body = allowed.json()
    assert body["succeeded"] is True
    assert body["to_version"]["label"] == "v1.0"
    assert body["actor"] == "promoter"
    assert ModelVersion.objects.get(pk=version.pk).status == "production"


def test_api_lists_versions_and_history(register_tabular, promoter):
    register_tabular(0)
    version = register_tabular(1)
    name = version.model.name
    api = client_for(promoter)
    assert api.post(f"/api/v1/models/{name}/versions/1/promote/", {"reason": "a"}, format="json").status_code == 200
    assert api.post(f"/api/v1/models/{name}/versions/2/promote/", {"reason": "b"}, format="json").status_code == 200
    assert api.post(f"/api/v1/models/{name}/rollback/", {"reason": "c"}, format="json").status_code == 200

    versions = api.get(f"/api/v1/models/{name}/versions/").json()["results"]
    assert [(v["version"], v["label"], v["status"]) for v in versions] == [
        (2, "v1.1", "archived"),
        (1, "v1.0", "production"),
    ]
    assert versions[0]["lineage"]["mlflow_run_id"]
    assert set(versions[0]["artifacts"]) >= {"xgboost", "onnx", "feature_schema"}

    history = api.get(f"/api/v1/models/{name}/deployments/").json()["results"]
    assert [(d["action"], d["to_version"]["version"], d["reason"]) for d in history] == [
        ("rollback", 1, "c"),
        ("promote", 2, "b"),
        ("promote", 1, "a"),
    ]
    model = api.get("/api/v1/models/").json()["results"][0]
    assert model["production"]["version"] == 1


def test_api_errors_name_the_problem(register_tabular, promoter):
    version = register_tabular(0)
    api = client_for(promoter)
    missing = api.post(f"/api/v1/models/{version.model.name}/versions/99/promote/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert api.post(f"/api/v1/models/{version.model.name}/versions/1/promote/").status_code == 200
    again = api.post(f"/api/v1/models/{version.model.name}/versions/1/promote/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "registry_conflict"
    bad = api.post(f"/api/v1/models/{version.model.name}/rollback/", {"reason": "x" * 3000}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["reason"]
    malformed = api.post(
        f"/api/v1/models/{version.model.name}/rollback/", data="{oops", content_type="application/json"
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "parse_error"


@override_settings(REGISTRY_REQUIRE_APPROVAL=True)
def test_promotion_needs_a_second_staff_user_when_approval_is_on(register_tabular, promoter, second_promoter):
    version = register_tabular(0)
    name = version.model.name
    requested = client_for(promoter).post(f"/api/v1/models/{name}/versions/1/promote/", {"reason": "go"}, format="json")
    assert requested.status_code == 202
    assert requested.json()["status"] == "pending"
    assert ModelVersion.objects.get(pk=version.pk).status == "candidate"

    self_approval = client_for(promoter).post(f"/api/v1/models/{name}/versions/1/approve/")
    assert self_approval.status_code == 409
    assert self_approval.json()["error"]["code"] == "approval_required"

    approved = client_for(second_promoter).post(f"/api/v1/models/{name}/versions/1/approve/")
    assert approved.status_code == 200, approved.content
    assert approved.json()["actor"] == "promoter"
    assert approved.json()["approved_by"] == "reviewer"
    assert ModelVersion.objects.get(pk=version.pk).status == "production"
    deployment = Deployment.objects.get(model__name=name)
    assert (deployment.actor, deployment.approved_by) == (promoter, second_promoter)


def test_database_refuses_a_second_production_version(register_tabular):
    v1, v2 = register_tabular(0), register_tabular(1)
    ModelVersion.objects.filter(pk=v1.pk).update(status="production")
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=v2.pk).update(status="production")


def test_semantic_labels_bump_minor_on_retrain_and_major_on_new_classes(register_detector, model_files, unique_name):
    from backend.registry.services import register_from_files

    assert register_detector(0).semantic_label == "v1.0"
    assert register_detector(1).semantic_label == "v1.1"
    detector = model_files["detectors"][2]
    changed = register_from_files(
        unique_name, "detection", detector.files(), metadata={**detector.metadata, "class_names": ["a", "b", "c"]}
    )
    assert changed.semantic_label == "v2.0"
    assert register_detector(0).semantic_label == "v3.0"  # back to the old classes: a change again


def test_admin_promotes_after_confirmation_and_logs_it(register_tabular, admin_client, admin_user):
    v1, v2 = register_tabular(0, accuracy=0.91), register_tabular(1, accuracy=0.97)
    changelist = "/admin/registry/modelversion/"
    page = admin_client.get(changelist)
    assert b"Promote to production" in page.content

    confirm = admin_client.post(changelist, {"action": "promote_to_production", "_selected_action": [v1.pk]})
    assert confirm.status_code == 200
    assert b"metrics-comparison" in confirm.content
    assert ModelVersion.objects.get(pk=v1.pk).status == "candidate"

    done = admin_client.post(
        changelist,
        {"action": "promote_to_production", "_selected_action": [v1.pk], "confirm": "yes", "reason": "ship it"},
    )
    assert done.status_code == 302
    assert ModelVersion.objects.get(pk=v1.pk).status == "production"

    comparison = admin_client.post(changelist, {"action": "promote_to_production", "_selected_action": [v2.pk]})
    text = comparison.content.decode()
    assert "0.97" in text and "0.91" in text  # the candidate's accuracy beside production's

    admin_client.post(
        changelist, {"action": "promote_to_production", "_selected_action": [v2.pk], "confirm": "yes", "reason": "b"}
    )
    admin_client.post(changelist, {"action": "roll_back", "_selected_action": [v2.pk], "confirm": "yes", "reason": "c"})
    assert ModelVersion.objects.get(pk=v1.pk).status == "production"
    messages = list(
        LogEntry.objects.filter(user=admin_user, object_id__in=[str(v1.pk), str(v2.pk)])
        .order_by("action_time", "id")
        .values_list("change_message", flat=True)
    )
    assert len(messages) == 3 and "ship it" in messages[0] and "Rolled back" in messages[2]

    history = admin_client.get(f"/admin/registry/registeredmodel/{v1.model.pk}/change/")
    assert history.status_code == 200
    assert history.content.count(b"rollback") >= 1


def test_admin_hides_promotion_from_staff_without_the_permission(register_tabular, client, django_user_model):
    register_tabular(0)
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    client.force_login(viewer)
    page = client.get("/admin/registry/modelversion/")
    assert page.status_code == 200
    assert b"Promote to production" not in page.content
