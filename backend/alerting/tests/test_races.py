"""Several workers at once (meaningful on PostgreSQL, where row locks are real): a delivery goes out
once, and concurrent evaluations open one alert."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from backend.alerting.models import Alert, AlertRule, Channel, Notification
from backend.alerting.services import outbox
from backend.alerting.services.evaluation import evaluate_rules
from tests.webhooks import RecordingServer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(count: int, work) -> list:
    start = threading.Barrier(count)
    results, errors = [], []

    def run():
        try:
            start.wait()
            results.append(work())
        except Exception as exc:  # noqa: BLE001  (collected and checked by the caller)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_a_delivery_raced_by_four_workers_goes_out_once():
    with RecordingServer() as server:
        channel = Channel.objects.create(name="hook", kind="webhook", config={"url": server.url})
        message = {"event": "alert.test", "title": "t", "text": "x", "severity": "info", "url": "", "payload": {}}
        row = Notification.objects.create(channel=channel, event="alert.test", title="t", message=message)
        results = race(4, lambda: outbox.deliver(row.pk))
    assert sorted(results, key=str) == [None, None, None, "sent"]
    assert len(server.received) == 1
    assert Notification.objects.get(pk=row.pk).attempts == 1


def test_concurrent_evaluations_open_one_alert(eager):
    AlertRule.objects.create(name="disk", kind="disk_free", comparison="<", threshold=101, cooldown_minutes=0)
    race(4, lambda: evaluate_rules(kinds=["disk_free"]))
    assert Alert.objects.filter(rule__name="disk").count() == 1
