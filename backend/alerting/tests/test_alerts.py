"""Alerts from real readings, delivered by a real Celery worker to a real HTTP server.

The drift test runs the whole chain: records scored through the API, the drift check on the
worker, `drift_detected`, the receiver, the evaluation task, the alert, the outbox, the webhook.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from backend.alerting.models import Alert, AlertRule, Channel, Notification, Silence
from backend.alerting.services import outbox
from backend.alerting.services.evaluation import evaluate_rules
from backend.core.models import PredictionError
from backend.monitoring.models import DriftReport
from backend.monitoring.tasks import check_drift
from backend.training.jobs import finish_failed
from backend.training.models import TrainingJob
from mlops.alerting.channels import verify_signature
from tests.factories import TrainingJobFactory
from tests.helpers import post_records, stream_from, wait_until
from tests.webhooks import RecordingServer

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping what it receives."""
    from aiosmtpd.controller import Controller

    from tests.services import free_port

    class Keep:
        messages: list[dict] = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append({"to": envelope.rcpt_tos, "content": envelope.content.decode()})
            return "250 OK"

    controller = Controller(Keep(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def webhook():
    with RecordingServer() as server:
        yield server


def webhook_channel(server: RecordingServer, **fields) -> Channel:
    return Channel.objects.create(
        name=f"hook-{server.url[-10:]}", kind="webhook", config={"url": server.url}, secret="s3cret", **fields
    )


def rule(kind: str, comparison: str, threshold: float, **fields) -> AlertRule:
    defaults = {"window_minutes": 60, "cooldown_minutes": 30, "severity": "warning"}
    return AlertRule.objects.create(
        name=f"{kind} {comparison} {threshold}", kind=kind, comparison=comparison, threshold=threshold,
        **{**defaults, **fields},
    )  # fmt: skip


def received_events(server: RecordingServer, of: AlertRule | None = None) -> list[dict]:
    """The bodies the server got (those about alerts of rule `of`, when given: the built-in rules also run
    in the test that comes first, before a flush empties the migrations' rows)."""
    bodies = [json.loads(request.body) for request in server.received]
    return [body for body in bodies if of is None or body["payload"].get("rule") == of.name]


@pytest.mark.worker
@pytest.mark.postgres
def test_drift_opens_one_alert_within_its_cooldown_and_resolves_when_it_clears(
    celery_worker_process, tabular_with_reference, breast_cancer, webhook
):
    name = tabular_with_reference.model.name
    channel = webhook_channel(webhook)
    drift = rule("drift", ">=", 1, cooldown_minutes=60)

    shifted = stream_from(breast_cancer, 200, seed=2)
    post_records(shifted * 1.6 + shifted.std() * 0.5)
    check_drift.delay(model_name=name).get(timeout=180)
    alert = wait_until(lambda: Alert.objects.filter(rule=drift).first(), timeout=60, what="the drift alert")
    assert alert.state == Alert.State.FIRING and alert.scope == name
    assert alert.evidence["drift_report"] == DriftReport.objects.get(model__name=name).pk
    wait_until(lambda: received_events(webhook, drift), timeout=30, what="the webhook delivery")
    first = next(r for r in webhook.received if json.loads(r.body)["payload"].get("rule") == drift.name)
    assert verify_signature("s3cret", first.body, first.headers["X-Modelyard-Signature"])
    assert not verify_signature("other", first.body, first.headers["X-Modelyard-Signature"])
    body = json.loads(first.body)
    assert body["event"] == "alert.firing" and body["payload"]["alert"] == alert.pk
    assert body["payload"]["evidence"]["drifted_columns"]
    notification = Notification.objects.get(alert=alert, channel=channel)
    wait_until(lambda: Notification.objects.get(pk=notification.pk).status == "sent", timeout=30, what="sent")
    notification.refresh_from_db()
    assert notification.http_status == 200 and notification.attempts == 1

    # A second drifted check within the cooldown updates the open alert, it does not open another.
    check_drift.delay(model_name=name).get(timeout=180)
    wait_until(
        lambda: Alert.objects.get(pk=alert.pk).evidence["drift_report"] != alert.evidence["drift_report"],
        timeout=60,
        what="the alert to follow the second report",
    )
    assert Alert.objects.filter(rule=drift).count() == 1
    assert Notification.objects.filter(alert=alert, channel=channel).count() == 1

    # Back to the reference distribution: the next check finds no drift and the alert resolves, saying so.
    post_records(stream_from(breast_cancer, 200, seed=5))
    assert check_drift.delay(model_name=name).get(timeout=180)["status"] == "ok"
    evaluate_rules(kinds=["drift"])
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED and alert.resolved_by is None
    wait_until(lambda: len(received_events(webhook, drift)) == 2, timeout=30, what="the resolution on the webhook")
    assert [e["event"] for e in received_events(webhook, drift)] == ["alert.firing", "alert.resolved"]


def test_a_failing_webhook_is_retried_with_backoff_and_its_failure_recorded(celery_worker_process):
    with RecordingServer(answers=[500, 503, 200]) as flaky, RecordingServer(answers=[410]) as gone:
        recovers = outbox.send_test(webhook_channel(flaky))
        refused = outbox.send_test(webhook_channel(gone))
        wait_until(lambda: Notification.objects.get(pk=recovers.pk).status == "sent", timeout=60, what="the retries")
        wait_until(lambda: Notification.objects.get(pk=refused.pk).status == "failed", timeout=30, what="failure")
    recovers.refresh_from_db()
    refused.refresh_from_db()
    assert recovers.attempts == 3 and len(flaky.received) == 3 and recovers.http_status == 200
    # 410 cannot get better by retrying: one attempt, failed for good, with what the server said.
    assert refused.attempts == 1 and len(gone.received) == 1
    assert refused.http_status == 410 and "410" in refused.error


def test_deliveries_give_up_after_the_last_attempt(settings, eager):
    settings.ALERTS_MAX_ATTEMPTS = 2
    settings.ALERTS_RETRY_SECONDS = 60
    with RecordingServer(answers=[500]) as broken:
        row = outbox.send_test(webhook_channel(broken))  # the first attempt, at commit
        assert Notification.objects.get(pk=row.pk).status == "pending"
        assert outbox.deliver(row.pk) is None  # not due yet: backoff
        Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
        assert outbox.deliver(row.pk) == "failed"
    row.refresh_from_db()
    assert row.attempts == 2 and row.http_status == 500 and len(broken.received) == 2


def test_a_delivery_is_claimed_once(webhook, eager):
    row = outbox.send_test(webhook_channel(webhook))
    assert Notification.objects.get(pk=row.pk).status == "sent"
    assert outbox.deliver(row.pk) is None
    assert outbox.deliver_due() == {}
    assert len(webhook.received) == 1


def test_private_addresses_are_refused_unless_allowed(settings, webhook, eager):
    settings.ALERTS_WEBHOOK_ALLOW_PRIVATE = False
    row = outbox.send_test(webhook_channel(webhook))
    row.refresh_from_db()
    assert row.status == "failed" and row.attempts == 1
    assert "127.0.0.1" in row.error
    assert webhook.received == []


def test_an_email_reaches_a_real_smtp_server(settings, smtp_server, eager):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.hostname, smtp_server.port
    channel = Channel.objects.create(name="ops mail", kind="email", config={"to": ["ops@example.com"]})
    row = outbox.send_test(channel)
    assert Notification.objects.get(pk=row.pk).status == "sent"
    (mail,) = smtp_server.handler.messages
    assert mail["to"] == ["ops@example.com"]
    assert "test notification to ops mail" in mail["content"]


def test_a_silence_suppresses_delivery_but_keeps_the_record(webhook, eager):
    webhook_channel(webhook)
    model = _registered("silenced-model")
    failures = rule("training_failed", ">=", 1, model=model)
    Silence.objects.create(rule=failures, ends_at=timezone.now() + timedelta(hours=1), reason="maintenance")
    job = TrainingJobFactory(model_name=model.name, running=True)
    assert finish_failed(job.pk, message="CUDA out of memory", code="training_failed")  # its signal evaluates
    alert = Alert.objects.get(rule=failures)
    assert alert.state == Alert.State.FIRING and "CUDA out of memory" in alert.summary
    assert list(alert.notifications.filter(channel__kind="webhook").values_list("status", flat=True)) == ["suppressed"]
    assert webhook.received == []
    # The silence ends: the resolution is delivered.
    Silence.objects.update(ends_at=timezone.now())
    TrainingJob.objects.update(finished_at=timezone.now() - timedelta(hours=2))
    evaluate_rules(kinds=["training_failed"])
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED
    assert [json.loads(r.body)["event"] for r in webhook.received] == ["alert.resolved"]


def _registered(name: str):
    from backend.registry.models import RegisteredModel

    return RegisteredModel.objects.create(name=name, kind="tabular")


def test_error_rate_from_rejected_requests_fires_and_clears(serve_tabular, webhook, eager):
    version = serve_tabular(0)
    channel = webhook_channel(webhook)
    errors = rule("error_rate", ">", 0.2, window_minutes=10, min_samples=5, severity="critical")
    errors.channels.add(channel)
    from rest_framework.test import APIClient

    client = APIClient()
    good = {"records": [{f["name"]: f["mean"] for f in version.model.feature_schema}]}
    for _ in range(3):
        assert client.post("/api/v1/tabular/predictions/", good, format="json").status_code == 200
    for _ in range(3):
        assert client.post("/api/v1/tabular/predictions/", {"records": [{"nope": 1}]}, format="json").status_code == 400
    assert PredictionError.objects.filter(model_name=version.model.name).count() == 3
    evaluate_rules(kinds=["error_rate"])
    alert = Alert.objects.get(rule=errors)
    assert alert.state == Alert.State.FIRING and alert.value == 0.5
    assert sum(alert.evidence["errors"].values()) == 3
    assert [json.loads(r.body)["event"] for r in webhook.received] == ["alert.firing"]
    # The window moves past the errors: the rate has no samples (not judged), then clears with traffic.
    PredictionError.objects.update(created_at=timezone.now() - timedelta(hours=1))
    for _ in range(5):
        client.post("/api/v1/tabular/predictions/", good, format="json")
    evaluate_rules(kinds=["error_rate"])
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED and alert.value == 0.0


def test_installation_rules_watch_the_disk_and_the_monitor_itself():
    disk = rule("disk_free", "<", 101, severity="critical")  # every disk has less than 101% free
    monitor = rule("monitor_stopped", ">", 10, severity="critical")
    PeriodicTask.objects.filter(name="monitoring-roll-up-performance").delete()
    evaluate_rules(kinds=["disk_free", "monitor_stopped"])
    assert Alert.objects.get(rule=disk).scope == ""
    assert not Alert.objects.filter(rule=monitor).exists()  # it has never run: nothing to judge

    from django_celery_beat.models import CrontabSchedule

    crontab = CrontabSchedule.objects.create(minute="*")
    PeriodicTask.objects.create(
        name="monitoring-roll-up-performance", task="monitoring.roll_up_performance", crontab=crontab,
        last_run_at=timezone.now() - timedelta(minutes=25),
    )  # fmt: skip
    evaluate_rules(kinds=["monitor_stopped"])
    alert = Alert.objects.get(rule=monitor)
    assert alert.state == Alert.State.FIRING and 24 < alert.value < 26
    PeriodicTask.objects.filter(name="monitoring-roll-up-performance").update(last_run_at=timezone.now())
    evaluate_rules(kinds=["monitor_stopped"])
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED


def test_a_rule_with_a_for_duration_waits_before_it_notifies(webhook, eager):
    webhook_channel(webhook)
    slow = rule("disk_free", "<", 101, for_minutes=5)
    now = timezone.now()
    evaluate_rules(kinds=["disk_free"], now=now)
    alert = Alert.objects.get(rule=slow)
    assert alert.state == Alert.State.PENDING and not alert.notifications.exists()
    evaluate_rules(kinds=["disk_free"], now=now + timedelta(minutes=5))
    alert.refresh_from_db()
    assert alert.state == Alert.State.FIRING and alert.notifications.filter(channel__kind="webhook").count() == 1


def test_a_job_failure_reaches_the_rule_through_its_signal(celery_worker_process, webhook):
    webhook_channel(webhook)
    model = _registered("failing-model")
    failures = rule("training_failed", ">=", 1, model=model)
    job = TrainingJobFactory(model_name=model.name, running=True)
    assert finish_failed(job.pk, message="dataset vanished", code="data_invalid")
    alert = wait_until(lambda: Alert.objects.filter(rule=failures).first(), timeout=30, what="the alert")
    assert alert.evidence["jobs"] == [job.pk]
    assert TrainingJob.objects.get(pk=job.pk).status == "failed"
    wait_until(lambda: webhook.received, timeout=30, what="the delivery")


def test_the_watchdog_reports_a_dead_beat_without_beat_or_a_worker(webhook):
    """Nothing runs the queue here: the web process's watchdog evaluates and delivers by itself."""
    from django_celery_beat.models import CrontabSchedule

    from backend.alerting import watchdog

    webhook_channel(webhook)
    monitor = rule("monitor_stopped", ">", 10, severity="critical")
    PeriodicTask.objects.filter(name="monitoring-roll-up-performance").delete()
    PeriodicTask.objects.create(
        name="monitoring-roll-up-performance", task="monitoring.roll_up_performance",
        crontab=CrontabSchedule.objects.create(minute="*"), last_run_at=timezone.now() - timedelta(minutes=30),
    )  # fmt: skip
    watchdog.start(interval=0.2)
    try:
        wait_until(lambda: received_events(webhook, monitor), timeout=30, what="the watchdog's delivery")
    finally:
        watchdog.stop()
    (body,) = received_events(webhook, monitor)
    assert body["event"] == "alert.firing" and body["severity"] == "critical"
    assert Alert.objects.get(rule=monitor).value >= 30


def test_long_windows_read_the_roll_ups(register_tabular, eager):
    from backend.monitoring.models import PerformanceBucket
    from backend.registry.services import promote_version

    version = register_tabular(0)
    promote_version(version)
    accuracy = rule("accuracy", "<", 0.7, window_minutes=24 * 60, min_samples=20)
    minute = timezone.now().replace(second=0, microsecond=0)
    for hours, correct in ((20, 9), (2, 3)):  # 12 of 30 verdicts correct over the day: 40%
        PerformanceBucket.objects.create(
            model=version.model, version=version, seconds=60, start=minute - timedelta(hours=hours),
            requests=50, predictions=50, feedback=15, feedback_correct=correct,
        )  # fmt: skip
    evaluate_rules(kinds=["accuracy"])
    alert = Alert.objects.get(rule=accuracy)
    assert alert.state == Alert.State.FIRING and alert.value == 0.4
    assert "30 samples" in alert.summary
