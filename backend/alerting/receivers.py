"""Receivers of the other apps' signals: each only enqueues a task (the signals go out on commit).

A broker that does not answer costs the notification of that one event (logged), never the
promotion or check that sent it; beat evaluates every rule again within the minute anyway.
"""

import logging

from django.dispatch import receiver
from kombu.exceptions import OperationalError

from backend.alerting.models import AlertRule, Channel
from backend.alerting.tasks import (
    evaluate_rules,
    publish_promotion_requested,
    publish_version_event,
    retrain,
    start_watch,
)
from backend.monitoring.signals import drift_detected
from backend.registry.models import Deployment
from backend.registry.signals import promotion_requested, version_promoted, version_registered, version_staged
from backend.serving.signals import model_load_failed
from backend.training.signals import training_job_failed

logger = logging.getLogger(__name__)
Kind = AlertRule.Kind


def enqueue(task, **kwargs) -> None:
    try:
        task.delay(**kwargs)
    except OperationalError:
        logger.exception("alerting.enqueue_failed task=%s kwargs=%s", task.name, kwargs)


@receiver(drift_detected, dispatch_uid="alerting.on_drift_detected")
def on_drift_detected(sender, report, **kwargs):
    enqueue(evaluate_rules, kinds=[Kind.DRIFT], model_name=report.model.name)
    enqueue(retrain, model_name=report.model.name, cause="drift", detail=f"drift report #{report.pk}")


@receiver(training_job_failed, dispatch_uid="alerting.on_training_job_failed")
def on_training_job_failed(sender, job_id, **kwargs):
    enqueue(evaluate_rules, kinds=[Kind.TRAINING_FAILED])


@receiver(model_load_failed, dispatch_uid="alerting.on_model_load_failed")
def on_model_load_failed(sender, model_name, **kwargs):
    enqueue(evaluate_rules, kinds=[Kind.LOAD_FAILED], model_name=model_name)


@receiver(version_promoted, dispatch_uid="alerting.on_version_promoted")
def on_version_promoted(sender, version, deployment, previous=None, **kwargs):
    rolled_back = deployment.action in (Deployment.Action.ROLLBACK, Deployment.Action.AUTO_ROLLBACK)
    event = Channel.Event.VERSION_ROLLED_BACK if rolled_back else Channel.Event.VERSION_PROMOTED
    enqueue(publish_version_event, event=event, version_id=version.pk, deployment_id=deployment.pk)
    if deployment.action == Deployment.Action.PROMOTE and previous is not None:
        enqueue(start_watch, deployment_id=deployment.pk)
    # A new production version clears a load-failure alert of the old one.
    enqueue(evaluate_rules, kinds=[Kind.LOAD_FAILED], model_name=version.model.name)


@receiver(version_staged, dispatch_uid="alerting.on_version_staged")
def on_version_staged(sender, version, **kwargs):
    enqueue(publish_version_event, event=Channel.Event.VERSION_STAGED, version_id=version.pk)


@receiver(version_registered, dispatch_uid="alerting.on_version_registered")
def on_version_registered(sender, version, **kwargs):
    enqueue(publish_version_event, event=Channel.Event.VERSION_REGISTERED, version_id=version.pk)


@receiver(promotion_requested, dispatch_uid="alerting.on_promotion_requested")
def on_promotion_requested(sender, request, **kwargs):
    enqueue(publish_promotion_requested, request_id=request.pk)
