"""Automatic rollback, end to end: a promoted version that fails on real requests is rolled back by
the worker's watch, and the time from its first failed answer to the rollback is measured."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from backend.alerting.models import Alert, AlertRule, DeploymentWatch, RollbackPolicy
from backend.alerting.services import rollback
from backend.registry.models import Deployment
from backend.registry.services import promote_version
from tests.factories import VersionFactory
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

DEADLINE_S = 60


def records(version) -> dict:
    return {"records": [{f["name"]: f["mean"] for f in version.model.feature_schema}]}


@pytest.mark.worker
@pytest.mark.postgres
def test_an_error_spike_after_a_promotion_is_rolled_back_within_a_minute(
    celery_worker_process, serve_tabular, model_files, unique_name
):
    RollbackPolicy.objects.create(model=None, watch_minutes=10, judge_minutes=1, min_requests=5)
    alarm = AlertRule.objects.create(
        name="rolled back", kind="auto_rollback", comparison=">=", threshold=1, window_minutes=60, severity="critical"
    )
    good = serve_tabular(0)
    client = APIClient()
    payload = records(good)
    for _ in range(10):  # the previous version's baseline: no errors
        assert client.post("/api/v1/tabular/predictions/", payload, format="json").status_code == 200

    # A release whose schema makes its first feature a whole number: it passes its smoke test (typical
    # values are rounded) and refuses what clients really send.
    files = model_files["tabular"][1]
    first = files.feature_schema[0]
    whole = {"dtype": "int", "min": math.floor(first["min"]), "max": math.ceil(first["max"])}
    schema = [{**first, **whole}, *files.feature_schema[1:]]
    broken = VersionFactory(name=unique_name, kind="tabular", files=replace(files, feature_schema=schema))
    promote_version(broken, reason="new schema")

    first_failure = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = client.post("/api/v1/tabular/predictions/", payload, format="json").status_code
        if status != 200 and first_failure is None:
            first_failure = timezone.now()
        if Deployment.objects.filter(model=good.model, action=Deployment.Action.AUTO_ROLLBACK).exists():
            break
        time.sleep(0.2)
    rolled = Deployment.objects.get(model=good.model, action=Deployment.Action.AUTO_ROLLBACK)
    assert first_failure is not None, "the broken release never refused a request"
    elapsed = (rolled.created_at - first_failure).total_seconds()
    print(f"\nauto-rollback: {elapsed:.1f} s from the first failed answer to the rollback (limit {DEADLINE_S} s)")  # noqa: T201
    assert elapsed <= DEADLINE_S
    assert rolled.to_version_id == good.pk and rolled.from_version_id == broken.pk
    assert "error rate" in rolled.reason

    watch = wait_until(
        lambda: DeploymentWatch.objects.filter(deployment__to_version=broken, rollback__isnull=False).first(),
        timeout=30,
        what="the watch to record its rollback",
    )
    assert watch.state == DeploymentWatch.State.ROLLED_BACK and watch.rollback_id == rolled.pk, watch.reason
    assert watch.baseline["errors"] == 0 and watch.baseline["requests"] >= 10
    # The good version answers again, and the rollback is an alert.
    wait_until(
        lambda: client.post("/api/v1/tabular/predictions/", payload, format="json").status_code == 200,
        timeout=30,
        what="the previous version to answer again",
    )
    alert = wait_until(lambda: Alert.objects.filter(rule=alarm).first(), timeout=30, what="the rollback alert")
    assert alert.state == Alert.State.FIRING and alert.evidence["deployments"] == [rolled.pk]


def test_a_healthy_release_passes_its_watch(serve_tabular, model_files, unique_name):
    RollbackPolicy.objects.create(model=None, watch_minutes=5, judge_minutes=5, min_requests=3)
    first = serve_tabular(0)
    client = APIClient()
    for _ in range(3):
        client.post("/api/v1/tabular/predictions/", records(first), format="json")
    second = VersionFactory(name=unique_name, kind="tabular", files=model_files["tabular"][1])
    deployment = promote_version(second, reason="better")
    watch = rollback.start_watch(deployment.pk)
    for _ in range(5):
        assert client.post("/api/v1/tabular/predictions/", records(first), format="json").status_code == 200
    assert rollback.check_watch(watch.pk, chain=False) == "watching"
    watch.refresh_from_db()
    assert watch.latest["judged"] and watch.latest["traffic"]["errors"] == 0
    later = timezone.now() + timedelta(minutes=6)
    assert rollback.check_watch(watch.pk, now=later, chain=False) == "passed"
    assert not Deployment.objects.filter(action=Deployment.Action.AUTO_ROLLBACK).exists()


def test_first_promotions_and_switched_off_policies_are_not_watched(serve_tabular, model_files, unique_name):
    first = serve_tabular(0)
    deployment = Deployment.objects.get(to_version=first)
    RollbackPolicy.objects.create(model=None, enabled=True)
    assert rollback.start_watch(deployment.pk) is None  # nothing to roll back to
    RollbackPolicy.objects.create(model=first.model, enabled=False)
    second = VersionFactory(name=unique_name, kind="tabular", files=model_files["tabular"][1])
    assert rollback.start_watch(promote_version(second).pk) is None
