"""The outbox: every delivery is a Notification row, sent by a Celery task, retried with backoff.

A row is claimed with a conditional update (pending and due -> sending), so it goes out once
however many workers try; a claim left by a worker that died is taken over after CLAIM_TIMEOUT.
A channel's error says whether retrying can help; after ALERTS_MAX_ATTEMPTS the row is failed
for good, with the last error and HTTP status on it for the admin.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from backend.alerting.models import Alert, Channel, Notification, Silence
from backend.core.queue import send_task
from mlops.alerting.channels import ChannelError, Message, channel_for
from mlops.exceptions import InvalidInput

logger = logging.getLogger(__name__)

DELIVER_TASK = "alerting.deliver_notification"
# A claim older than this belongs to a worker that died mid-send: the row is due again.
CLAIM_TIMEOUT = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)


# -- what is said --------------------------------------------------------------------------------
def alert_message(alert: Alert, event: str) -> Message:
    rule = alert.rule
    where = alert.scope or "the installation"
    word = {"alert.firing": "firing", "alert.resolved": "resolved", "alert.test": "test"}.get(event, event)
    lines = [alert.summary or rule.description or rule.name]
    if event == "alert.resolved":
        lines.insert(
            0, "The condition cleared." if alert.resolved_by_id is None else f"Resolved by {alert.resolved_by}."
        )
    lines.append(f"Rule: {rule.name} ({rule.get_kind_display()} {rule.comparison} {rule.threshold:g}).")
    return Message(
        event=event,
        title=f"[{alert.severity}] {word}: {rule.name} on {where}",
        text="\n".join(lines),
        severity=alert.severity,
        url=f"{settings.SITE_URL}/alerts/{alert.pk}/",
        payload={
            "alert": alert.pk,
            "rule": rule.name,
            "kind": rule.kind,
            "model": alert.scope or None,
            "state": alert.state,
            "value": alert.value,
            "threshold": alert.threshold,
            "comparison": rule.comparison,
            "started_at": alert.started_at.isoformat(),
            "evidence": alert.evidence,
        },
    )


def message_of(notification: Notification) -> Message:
    return Message(**notification.message)


def _stored(message: Message) -> dict:
    return {
        "event": message.event,
        "title": message.title,
        "text": message.text,
        "severity": message.severity,
        "url": message.url,
        "payload": message.payload,
    }


# -- queueing ------------------------------------------------------------------------------------
def notify_alert(alert: Alert, event: str) -> list[Notification]:
    """One row per channel that takes this alert; suppressed (and kept) when a silence mutes it."""
    chosen = list(alert.rule.channels.all()) or list(Channel.objects.filter(alerts=True))
    channels = [channel for channel in chosen if channel.takes_alert(alert.severity)]
    silence = Silence.muting(alert)
    message = alert_message(alert, event)
    rows = [_queue(channel, message, alert=alert, suppressed_by=silence) for channel in channels]
    logger.info(
        "alerting.notify alert=%s event=%s channels=%s silenced=%s", alert.pk, event, len(rows), silence is not None
    )
    return rows


def publish_event(event: str, message: Message) -> list[Notification]:
    """A registry event to every channel subscribed to it."""
    rows = [_queue(channel, message) for channel in Channel.objects.filter(enabled=True) if channel.takes_event(event)]
    logger.info("alerting.event event=%s channels=%s", event, len(rows))
    return rows


def send_test(channel: Channel) -> Notification:
    """The admin's "send a test notification": through the outbox like any other."""
    message = Message(
        event="alert.test",
        title=f"[info] test notification to {channel.name}",
        text=f"This is a test of the {channel.kind} channel {channel.name!r} from Modelyard.",
        url=f"{settings.SITE_URL}/admin/alerting/channel/{channel.pk}/change/",
        payload={"channel": channel.name},
    )
    return _queue(channel, message)


def _queue(channel: Channel, message: Message, *, alert: Alert | None = None, suppressed_by=None) -> Notification:
    row = Notification.objects.create(
        channel=channel,
        alert=alert,
        event=message.event,
        title=message.title[:300],
        message=_stored(message),
        max_attempts=settings.ALERTS_MAX_ATTEMPTS,
        status=Notification.Status.SUPPRESSED if suppressed_by else Notification.Status.PENDING,
        error=f"muted by {suppressed_by}" if suppressed_by else "",
    )
    if not suppressed_by:
        # robust: with the broker down the row waits for the sweep (or the watchdog) instead of failing
        # the evaluation that queued it.
        transaction.on_commit(lambda: send_task(DELIVER_TASK, kwargs={"notification_id": row.pk}), robust=True)
    return row


# -- delivering ----------------------------------------------------------------------------------
def transport(channel: Channel):
    """The mlops channel for a row, with what only Django knows: its mail backend, the private-address policy."""
    options = {
        Channel.Kind.EMAIL: {"send_mail": _send_mail},
        Channel.Kind.WEBHOOK: {"secret": channel.secret, "allow_private": settings.ALERTS_WEBHOOK_ALLOW_PRIVATE},
    }.get(channel.kind, {})
    return channel_for(channel.kind, channel.config, **options)


def _send_mail(subject: str, body: str, recipients: list[str]) -> None:
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)


def backoff(attempts: int) -> timedelta:
    """30 s, 60 s, 120 s... (ALERTS_RETRY_SECONDS doubled per attempt), at most an hour."""
    return min(timedelta(seconds=settings.ALERTS_RETRY_SECONDS * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def _due(now):
    return Q(status=Notification.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=Notification.Status.SENDING, claimed_at__lt=now - CLAIM_TIMEOUT
    )


def deliver(notification_id: int) -> str | None:
    """Claim, send, record. Returns the row's status afterwards, or None when it was not ours to send."""
    now = timezone.now()
    claimed = Notification.objects.filter(_due(now), pk=notification_id).update(
        status=Notification.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    row = Notification.objects.select_related("channel").get(pk=notification_id)
    try:
        if not row.channel.enabled:
            raise ChannelError(f"channel {row.channel.name} is switched off", permanent=True)
        delivery = transport(row.channel).send(message_of(row))
    except (ChannelError, InvalidInput) as exc:
        permanent = getattr(exc, "permanent", True) or row.attempts >= row.max_attempts
        changes = {
            "status": Notification.Status.FAILED if permanent else Notification.Status.PENDING,
            "error": exc.message[:2000],
            "http_status": getattr(exc, "status_code", None),
            "next_attempt_at": now if permanent else now + backoff(row.attempts),
        }
        logger.warning(
            "alerting.delivery_failed notification=%s channel=%s attempt=%s permanent=%s error=%s",
            row.pk, row.channel.name, row.attempts, permanent, exc.message[:300],
        )  # fmt: skip
    else:
        changes = {
            "status": Notification.Status.SENT,
            "sent_at": timezone.now(),
            "http_status": delivery.status_code,
            "detail": delivery.detail[:2000],
            "error": "",
        }
        logger.info("alerting.delivered notification=%s channel=%s attempt=%s", row.pk, row.channel.name, row.attempts)
    Notification.objects.filter(pk=row.pk, status=Notification.Status.SENDING, claimed_at=now).update(**changes)
    if changes["status"] == Notification.Status.PENDING:
        try:
            send_task(DELIVER_TASK, kwargs={"notification_id": row.pk}, countdown=backoff(row.attempts).total_seconds())
        except Exception:  # the broker is down: the minute's sweep (or the web's watchdog) retries the row
            logger.warning("alerting.retry_not_queued notification=%s", row.pk, exc_info=True)
    return changes["status"]


def deliver_due(*, limit: int = 200) -> dict[str, int]:
    """The sweep (beat, every minute): rows whose retry is due, or whose worker died mid-send."""
    due = Notification.objects.filter(_due(timezone.now())).order_by("next_attempt_at").values_list("pk", flat=True)
    outcome: dict[str, int] = {}
    for pk in list(due[:limit]):
        status = deliver(pk)
        if status is not None:
            outcome[status] = outcome.get(status, 0) + 1
    return outcome


def retry_now(ids) -> int:
    """Send these again from their first attempt (the admin's "retry now" after fixing a channel)."""
    ids = list(ids)
    with transaction.atomic():
        Notification.objects.filter(pk__in=ids).exclude(status=Notification.Status.SENT).update(
            status=Notification.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), claimed_at=None
        )
        for pk in ids:
            transaction.on_commit(lambda pk=pk: send_task(DELIVER_TASK, kwargs={"notification_id": pk}))
    return len(ids)
