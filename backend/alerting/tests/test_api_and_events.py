"""The alerting API (filters, acknowledge, resolve, errors), its pages, and registry events to subscribers."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from backend.alerting.models import Alert, AlertRule, Channel, Notification
from backend.alerting.services import events
from backend.alerting.services.evaluation import evaluate_rules
from backend.registry.services import promote_version, rollback_model
from mlops.alerting.channels import verify_signature
from tests.factories import UserFactory, VersionFactory
from tests.webhooks import RecordingServer

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def staff():
    return UserFactory(staff=True)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def firing_alert() -> Alert:
    AlertRule.objects.create(name="disk", kind="disk_free", comparison="<", threshold=101, severity="critical")
    evaluate_rules(kinds=["disk_free"])
    return Alert.objects.get(rule__name="disk")


def test_alerts_are_listed_filtered_acknowledged_and_resolved(staff, eager):
    alert = firing_alert()
    client = api(staff)
    listed = client.get("/api/v1/alerts/", {"state": "open", "severity": "critical"}).json()
    assert [row["id"] for row in listed["results"]] == [alert.pk]
    assert listed["results"][0]["links"]["page"] == f"/alerts/{alert.pk}/"
    assert client.get("/api/v1/alerts/", {"severity": "info"}).json()["results"] == []

    acknowledged = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").json()
    assert acknowledged["state"] == "acknowledged" and acknowledged["acknowledged_by"] == staff.username
    again = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "alert_conflict"

    resolved = client.post(f"/api/v1/alerts/{alert.pk}/resolve/").json()
    assert resolved["state"] == "resolved" and resolved["resolved_by"] == staff.username
    assert client.post(f"/api/v1/alerts/{alert.pk}/resolve/").status_code == 409
    assert client.get("/api/v1/alerts/", {"state": "open"}).json()["results"] == []
    events_sent = client.get("/api/v1/notifications/", {"alert": alert.pk}).json()["results"]
    assert {row["event"] for row in events_sent} <= {"alert.firing", "alert.resolved"}
    rules = client.get("/api/v1/alert-rules/").json()["results"]
    assert [rule["name"] for rule in rules if rule["name"] == "disk"] == ["disk"]


def test_bad_filters_and_strangers_get_clear_errors(staff, plain_user):
    client = api(staff)
    for params, field in (({"state": "burning"}, "state"), ({"severity": "loud"}, "severity"),
                          ({"alert": "x"}, "alert")):  # fmt: skip
        url = "/api/v1/notifications/" if field == "alert" else "/api/v1/alerts/"
        response = client.get(url, params)
        assert response.status_code == 400, params
        assert field in json.dumps(response.json())
    assert client.post("/api/v1/alerts/999999/acknowledge/").status_code == 404
    assert api(plain_user).get("/api/v1/alerts/").status_code == 403
    assert APIClient().get("/api/v1/notifications/").status_code == 401


def test_the_alert_page_shows_evidence_and_acknowledges(staff, eager):
    alert = firing_alert()
    browser = Client()
    browser.force_login(staff)
    page = browser.get(f"/alerts/{alert.pk}/")
    assert page.status_code == 200 and b"disk" in page.content and b"Acknowledge" in page.content
    response = browser.post(f"/alerts/{alert.pk}/acknowledge/", follow=True)
    assert response.status_code == 200 and b"acknowledged" in response.content
    assert Alert.objects.get(pk=alert.pk).state == "acknowledged"
    assert b"Open alerts" in browser.get("/monitoring/").content


def test_registry_events_reach_subscribed_webhooks_with_their_history(model_files, unique_name, eager):
    with RecordingServer() as server:
        Channel.objects.create(
            name="registry hook", kind="webhook", config={"url": server.url}, secret="k", alerts=False,
            events=["version.registered", "version.promoted", "version.rolled_back"],
        )  # fmt: skip
        Channel.objects.create(name="quiet hook", kind="webhook", config={"url": server.url}, events=[])
        first = VersionFactory(name=unique_name, kind="tabular", files=model_files["tabular"][0], promoted=True)
        second = VersionFactory(name=unique_name, kind="tabular", files=model_files["tabular"][1])
        promote_version(second, reason="better")
        rollback_model(second.model, reason="worse in production")
    bodies = [json.loads(request.body) for request in server.received]
    assert [body["event"] for body in bodies] == [
        "version.registered", "version.promoted", "version.registered", "version.promoted", "version.rolled_back",
    ]  # fmt: skip
    for request in server.received:
        assert verify_signature("k", request.body, request.headers["X-Modelyard-Signature"])
    rolled_back = bodies[-1]["payload"]
    assert rolled_back["version"]["version"] == first.version
    assert rolled_back["deployment"]["action"] == "rollback" and rolled_back["deployment"]["reason"]
    history = Notification.objects.filter(channel__name="registry hook")
    assert history.count() == 5 and set(history.values_list("status", flat=True)) == {"sent"}
    assert not Notification.objects.filter(channel__name="quiet hook").exists()
    assert events.version_event("version.promoted", version_id=10**9) == []
