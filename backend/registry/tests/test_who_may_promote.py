"""One check in the registry for every way into production: a person needs the promote permission;
no person is the system, and the deployment says so."""

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from backend.registry import services
from backend.registry.models import Deployment, ModelVersion, PromotionRequest, RegisteredModel
from backend.registry.services import PromotePermissionRequired
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def bare_version(name: str) -> ModelVersion:
    """A version row without artifacts: the permission is checked before anything is loaded."""
    model = RegisteredModel.objects.create(name=name, kind=RegisteredModel.Kind.TABULAR)
    return ModelVersion.objects.create(model=model, version=1)


@pytest.fixture
def promoter():
    user = UserFactory(username="promoter", staff=True)
    user.user_permissions.add(Permission.objects.get(codename="promote_modelversion"))
    return user


def test_people_without_the_permission_are_refused_on_every_registry_path(unique_name, staff_user, plain_user):
    version = bare_version(unique_name)
    retired = UserFactory(username="retired", superuser=True, is_active=False)
    for person in (staff_user, plain_user, retired):
        with pytest.raises(PromotePermissionRequired) as refused:
            services.promote_version(version, actor=person, reason="ship it")
        assert (refused.value.status, refused.value.code) == (403, "promote_permission_required")
        assert "registry.promote_modelversion" in refused.value.message
        with pytest.raises(PromotePermissionRequired):
            services.rollback_model(version.model, actor=person)  # refused before "nothing to roll back to"
        with pytest.raises(PromotePermissionRequired):
            services.request_promotion(version, user=person)
    assert not Deployment.objects.exists() and not PromotionRequest.objects.exists()
    assert ModelVersion.objects.get(pk=version.pk).status == ModelVersion.Status.CANDIDATE


def test_an_approval_needs_the_permission_of_both_people(unique_name, staff_user, promoter):
    version = bare_version(unique_name)
    request = PromotionRequest.objects.create(version=version, requested_by=promoter)
    with pytest.raises(PromotePermissionRequired):
        services.approve_promotion(request, user=staff_user)
    assert PromotionRequest.objects.get(pk=request.pk).status == PromotionRequest.Status.PENDING

    # The requester lost the permission since asking: the approval cannot carry it through.
    promoter.user_permissions.clear()
    with pytest.raises(PromotePermissionRequired):
        services.approve_promotion(request, user=UserFactory(username="second", superuser=True))
    assert not Deployment.objects.filter(succeeded=True).exists()


def test_deployments_say_whether_a_person_or_the_system_acted(register_tabular, promoter):
    first, second = register_tabular(0), register_tabular(1)
    by_system = services.promote_version(first, actor=None, reason="bootstrap")
    assert (by_system.system, by_system.actor) == (True, None)

    by_person = services.promote_version(second, actor=promoter, reason="better")
    assert (by_person.system, by_person.actor) == (False, promoter)

    automatic = services.rollback_model(first.model, actor=None, reason="worse in production", automatic=True)
    assert (automatic.action, automatic.system, automatic.actor) == (Deployment.Action.AUTO_ROLLBACK, True, None)

    client = APIClient()
    client.force_authenticate(promoter)
    history = client.get(f"/api/v1/models/{first.model.name}/deployments/").json()["results"]
    assert [(row["action"], row["actor"], row["system"]) for row in history] == [
        ("auto_rollback", None, True),
        ("promote", "promoter", False),
        ("promote", None, True),
    ]
