"""Evaluating the rules: read each rule's metric, step its alerts through the state machine
(mlops.alerting.rules.decide), and put what must be said in the outbox.

Runs on beat every minute and from the apps' signals (drift found, a version promoted, a job
failed, a load failed). Evaluations of one rule are serialised on its row, and the database
allows one open alert per rule and scope, so two workers evaluating at once never open two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from backend.alerting.models import Alert, AlertRule
from backend.alerting.services import outbox
from backend.alerting.services.readings import observe
from backend.core.queue import send_task
from backend.registry.models import RegisteredModel
from mlops.alerting.rules import Action, AlertState, Observation, OpenAlert, decide, opening_state
from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)

RETRAIN_TASK = "alerting.retrain"
PERFORMANCE_KINDS = (AlertRule.Kind.ACCURACY, AlertRule.Kind.CONFIDENCE, AlertRule.Kind.ERROR_RATE)


@dataclass
class Evaluation:
    """What one run did: rules read, and the alerts opened, fired, resolved (ids)."""

    rules: int = 0
    actions: dict[str, list[int]] = field(default_factory=dict)

    def add(self, action: Action, alert_id: int | None) -> None:
        if action not in (Action.NONE, Action.UPDATE) and alert_id is not None:
            self.actions.setdefault(action.value, []).append(alert_id)


def evaluate_rules(
    *, kinds: list[str] | None = None, model_name: str | None = None, now: datetime | None = None
) -> Evaluation:
    """Evaluate every enabled rule (of `kinds`, for `model_name` when given) now."""
    now = now or timezone.now()
    rules = AlertRule.objects.filter(enabled=True).select_related("model")
    if kinds:
        rules = rules.filter(kind__in=kinds)
    result = Evaluation()
    for rule in rules:
        result.rules += 1
        try:
            observations = observe(rule, now=now, model_name=model_name)
        except Exception:  # one rule that cannot read its metric must not silence the others
            logger.exception("alerting.reading_failed rule=%s", rule.name)
            continue
        for observation in observations:
            action, alert_id = apply(rule, observation, now=now)
            result.add(action, alert_id)
    if result.actions:
        logger.info("alerting.evaluated rules=%s actions=%s", result.rules, result.actions)
    return result


def apply(rule: AlertRule, observation: Observation, *, now: datetime) -> tuple[Action, int | None]:
    """One rule and scope: decide, write the alert, queue its notifications, all in one transaction."""
    try:
        with transaction.atomic():
            AlertRule.objects.select_for_update().filter(pk=rule.pk).first()  # one evaluation of a rule at a time
            return _apply_locked(rule, observation, now)
    except IntegrityError:
        # Another evaluation opened the alert between our read and our insert (SQLite has no row
        # locks): theirs stands, and the next evaluation updates it.
        logger.info("alerting.open_raced rule=%s scope=%s", rule.name, observation.scope)
        return Action.NONE, None


def _apply_locked(rule: AlertRule, observation: Observation, now: datetime) -> tuple[Action, int | None]:
    condition = rule.condition()
    current = Alert.objects.open().filter(rule=rule, scope=observation.scope).first()
    last_resolved = (
        Alert.objects.filter(rule=rule, scope=observation.scope, state=Alert.State.RESOLVED)
        .order_by("-resolved_at")
        .first()
    )
    decision = decide(
        condition,
        observation,
        current=OpenAlert(AlertState(current.state), current.started_at) if current else None,
        last_resolved_at=last_resolved.resolved_at if last_resolved else None,
        now=now,
    )
    reading = {"last_seen_at": now}
    if observation.value is not None:
        reading |= {"value": observation.value, "summary": observation.summary, "evidence": observation.evidence or {}}
    match decision.action:
        case Action.NONE:
            return decision.action, None
        case Action.OPEN:
            state = opening_state(condition)
            alert = Alert.objects.create(
                rule=rule,
                model=RegisteredModel.objects.filter(name=observation.scope).first() if observation.scope else None,
                scope=observation.scope,
                state=state,
                severity=rule.severity,
                threshold=rule.threshold,
                started_at=now,
                fired_at=now if state == AlertState.FIRING else None,
                **reading,
            )
        case Action.REOPEN:
            alert = last_resolved
            _save(
                alert,
                state=Alert.State.FIRING,
                resolved_at=None,
                resolved_by=None,
                reopened=alert.reopened + 1,
                **reading,
            )
        case Action.UPDATE:
            alert = current
            _save(alert, **reading)
        case Action.FIRE:
            alert = current
            _save(alert, state=Alert.State.FIRING, fired_at=now, **reading)
        case Action.RESOLVE:
            alert = current
            _save(alert, state=Alert.State.RESOLVED, resolved_at=now, **reading)
        case Action.DROP:
            current.delete()
            return decision.action, None
    if decision.notify:
        event = "alert.resolved" if decision.action == Action.RESOLVE else "alert.firing"
        outbox.notify_alert(alert, event)
        if event == "alert.firing" and rule.kind in PERFORMANCE_KINDS and alert.scope:
            # The model's training policy may answer a performance drop with a retraining.
            kwargs = {"model_name": alert.scope, "cause": "performance drop", "detail": f"alert #{alert.pk}"}
            transaction.on_commit(lambda: send_task(RETRAIN_TASK, kwargs=kwargs), robust=True)
    if decision.action != Action.UPDATE:
        logger.info(
            "alerting.%s rule=%s scope=%s alert=%s value=%s",
            decision.action.value,
            rule.name,
            observation.scope,
            alert.pk,
            observation.value,
        )
    return decision.action, alert.pk


def _save(alert: Alert, **changes) -> None:
    for name, value in changes.items():
        setattr(alert, name, value)
    alert.save(update_fields=list(changes))


# -- people acting on alerts ---------------------------------------------------------------------
class AlertConflict(MlopsError):
    """The alert is not in a state that allows the action (already resolved...)."""

    code = "alert_conflict"
    status = 409


def acknowledge_alert(alert: Alert, *, user) -> Alert:
    """Someone is on it: the alert stays open (and resolves by itself) but is marked as seen."""
    now = timezone.now()
    changed = Alert.objects.filter(pk=alert.pk, state__in=[Alert.State.FIRING, Alert.State.PENDING]).update(
        state=Alert.State.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=user
    )
    if not changed:
        raise AlertConflict(f"alert {alert.pk} is {Alert.objects.get(pk=alert.pk).state}, not firing")
    logger.info("alerting.acknowledged alert=%s by=%s", alert.pk, user)
    return Alert.objects.get(pk=alert.pk)


def resolve_alert(alert: Alert, *, user) -> Alert:
    """Closed by hand; the channels hear it. A condition that persists reopens it quietly within the cooldown."""
    now = timezone.now()
    with transaction.atomic():
        changed = (
            Alert.objects.open()
            .filter(pk=alert.pk)
            .update(state=Alert.State.RESOLVED, resolved_at=now, resolved_by=user)
        )
        if not changed:
            raise AlertConflict(f"alert {alert.pk} is already resolved")
        alert = Alert.objects.select_related("rule").get(pk=alert.pk)
        if alert.fired_at is not None:
            outbox.notify_alert(alert, "alert.resolved")
    logger.info("alerting.resolved_by_hand alert=%s by=%s", alert.pk, user)
    return alert
