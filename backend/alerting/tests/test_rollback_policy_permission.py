"""A rollback policy decides when the system rolls production back by itself: in the admin, only staff
who may promote add, change or delete one; staff with the model permissions alone may only look."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from backend.alerting.models import RollbackPolicy
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CODENAMES = ["add_rollbackpolicy", "change_rollbackpolicy", "delete_rollbackpolicy", "view_rollbackpolicy"]
FORM = {
    "enabled": "on", "watch_minutes": 30, "judge_minutes": 2, "baseline_minutes": 60, "min_requests": 10,
    "error_rate_margin": 0.05, "latency_ratio": 2.0, "latency_grace_seconds": 120,
}  # fmt: skip


def staff(username: str, *codenames: str):
    user = UserFactory(username=username, staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def default_policy() -> RollbackPolicy:
    """The policy for every model (the migrations create it), at a known watch time."""
    policy = RollbackPolicy.objects.filter(model__isnull=True).first() or RollbackPolicy()
    policy.watch_minutes = 30
    policy.save()
    return policy


def delete_url(policy: RollbackPolicy) -> str:
    return reverse("admin:alerting_rollbackpolicy_delete", args=[policy.pk])


def test_staff_who_may_not_promote_only_view_rollback_policies(client):
    policy = default_policy()
    before = RollbackPolicy.objects.count()
    client.force_login(staff("editor", *CODENAMES))

    assert client.post(reverse("admin:alerting_rollbackpolicy_add"), FORM).status_code == 403
    change = reverse("admin:alerting_rollbackpolicy_change", args=[policy.pk])
    page = client.get(change)
    assert page.status_code == 200 and 'name="watch_minutes"' not in page.content.decode()  # read-only
    assert client.post(change, {**FORM, "watch_minutes": 1}).status_code == 403
    assert client.post(delete_url(policy), {"post": "yes"}).status_code == 403
    policy.refresh_from_db()
    assert policy.watch_minutes == 30 and RollbackPolicy.objects.count() == before


def test_staff_who_may_promote_edit_rollback_policies(client):
    policy = default_policy()
    client.force_login(staff("promoter", *CODENAMES, "promote_modelversion"))

    change = reverse("admin:alerting_rollbackpolicy_change", args=[policy.pk])
    assert client.post(change, {**FORM, "watch_minutes": 5}).status_code == 302
    policy.refresh_from_db()
    assert policy.watch_minutes == 5
    assert client.post(delete_url(policy), {"post": "yes"}).status_code == 302
    assert not RollbackPolicy.objects.filter(pk=policy.pk).exists()
