"""Celery tasks of alerting, on the default queue: evaluation is quick and must not wait behind drift checks."""

from __future__ import annotations

from celery import shared_task

from backend.alerting.services import evaluation, events, outbox, retraining, rollback


# Beat, every minute, and from the apps' signals (narrowed to a kind and a model). No retries:
# the next minute evaluates again, and evaluation is idempotent.
@shared_task(name="alerting.evaluate_rules")
def evaluate_rules(*, kinds: list[str] | None = None, model_name: str | None = None) -> dict:
    result = evaluation.evaluate_rules(kinds=kinds, model_name=model_name)
    return {"rules": result.rules, **result.actions}


# One delivery; a failure is recorded on the row and retried by this task again after a backoff
# (and by the sweep below if that message is lost), never by Celery's own retry.
@shared_task(name="alerting.deliver_notification")
def deliver_notification(*, notification_id: int) -> str | None:
    return outbox.deliver(notification_id)


# Beat, every minute: deliveries whose retry is due, or whose worker died mid-send.
@shared_task(name="alerting.deliver_due_notifications")
def deliver_due_notifications() -> dict:
    return outbox.deliver_due()


@shared_task(name="alerting.publish_version_event")
def publish_version_event(*, event: str, version_id: int, deployment_id: int | None = None) -> int:
    return len(events.version_event(event, version_id=version_id, deployment_id=deployment_id))


@shared_task(name="alerting.publish_promotion_requested")
def publish_promotion_requested(*, request_id: int) -> int:
    return len(events.promotion_requested(request_id=request_id))


# From version_promoted: watch a promotion that replaced a version.
@shared_task(name="alerting.start_watch")
def start_watch(*, deployment_id: int) -> str | None:
    watch = rollback.start_watch(deployment_id)
    return watch.state if watch else None


# One look at a watch; it queues the next one itself (ALERTS_WATCH_CHECK_SECONDS later) while the
# watch runs. A lost look is caught by the sweep below.
@shared_task(name="alerting.check_watch")
def check_watch(*, watch_id: int) -> str:
    return rollback.check_watch(watch_id)


# Beat, every minute: watches nobody looked at lately.
@shared_task(name="alerting.check_watches")
def check_watches() -> dict:
    return rollback.check_watches()


# From drift_detected and from performance alerts: the model's training policy decides.
@shared_task(name="alerting.retrain")
def retrain(*, model_name: str, cause: str, detail: str = "") -> int | None:
    job = retraining.retrain(model_name, cause=cause, detail=detail)
    return job.pk if job else None


# Beat, every five minutes: the policies' schedule and feedback triggers.
@shared_task(name="alerting.run_training_policies")
def run_training_policies() -> list[int]:
    return retraining.run_policies()
