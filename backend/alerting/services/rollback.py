"""Automatic rollback: every promotion that replaced a version is watched, and rolled back by
itself when it fails more or answers slower than the version it replaced did.

The watch starts from `version_promoted`; a task looks every ALERTS_WATCH_CHECK_SECONDS (it
queues its own next look) and beat's minute sweep looks at every watch too, so a lost message
delays a look by a minute at most. Errors are counted per model over the window (only one version
is in production at a time, and a request refused before reaching a model still counts);
answered requests and latency are the version's own.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from backend.alerting.models import AlertRule, DeploymentWatch, RollbackPolicy
from backend.core.models import PredictionError
from backend.core.queue import send_task
from backend.monitoring.services.performance import window_performance
from backend.registry.models import Deployment
from backend.registry.services import rollback_model
from mlops.alerting.release import Traffic, judge_release
from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)

CHECK_TASK = "alerting.check_watch"
EVALUATE_TASK = "alerting.evaluate_rules"


def traffic(deployment_model, version_id: int, start: datetime, end: datetime) -> Traffic:
    numbers = window_performance(start, end).get(version_id) or {}
    errors = PredictionError.objects.filter(
        model_name=deployment_model.name, created_at__gte=start, created_at__lt=end
    ).count()
    return Traffic(requests=numbers.get("requests", 0), errors=errors, latency_p95_ms=numbers.get("latency_p95_ms"))


def start_watch(deployment_id: int) -> DeploymentWatch | None:
    """Watch a promotion that replaced a version, under the model's rollback policy (if any applies)."""
    deployment = Deployment.objects.select_related("model", "from_version", "to_version").get(pk=deployment_id)
    if deployment.action != Deployment.Action.PROMOTE or deployment.from_version is None or not deployment.succeeded:
        return None
    policy = RollbackPolicy.for_model(deployment.model)
    if policy is None:
        return None
    started = deployment.created_at
    baseline = traffic(
        deployment.model, deployment.from_version.pk, started - timedelta(minutes=policy.baseline_minutes), started
    )
    watch, created = DeploymentWatch.objects.get_or_create(
        deployment=deployment,
        defaults={
            "model": deployment.model,
            "started_at": started,
            "ends_at": started + timedelta(minutes=policy.watch_minutes),
            "baseline": baseline.as_dict(),
        },
    )
    if created:
        logger.info(
            "alerting.watch_started model=%s version=%s baseline=%s",
            deployment.model.name,
            deployment.to_version,
            watch.baseline,
        )
        _look_again(watch)
    return watch


def check_watch(watch_id: int, *, now: datetime | None = None, chain: bool = True) -> str:
    """One look at a watch; returns its state afterwards. `chain` queues the next look."""
    now = now or timezone.now()
    watch = DeploymentWatch.objects.select_related("deployment__to_version", "model").get(pk=watch_id)
    if watch.state != DeploymentWatch.State.WATCHING:
        return watch.state
    later = Deployment.objects.filter(model=watch.model, succeeded=True, created_at__gt=watch.started_at)
    if later.exclude(pk=watch.deployment_id).exists():
        return _finish(watch, DeploymentWatch.State.SUPERSEDED, now, reason="another deployment followed")
    policy = RollbackPolicy.for_model(watch.model)
    if policy is None:
        return _finish(watch, DeploymentWatch.State.PASSED, now, reason="rollback policy switched off")
    warm = now - watch.started_at >= timedelta(seconds=policy.latency_grace_seconds)
    # Once warm, latency is read from the end of the grace: the loading and warming answers are not
    # the version's own pace.
    since = watch.started_at + timedelta(seconds=policy.latency_grace_seconds) if warm else watch.started_at
    start = max(since, now - timedelta(minutes=policy.judge_minutes))
    current = traffic(watch.model, watch.deployment.to_version_id, start, now)
    baseline = Traffic(
        requests=watch.baseline["requests"],
        errors=watch.baseline["errors"],
        latency_p95_ms=watch.baseline.get("latency_p95_ms"),
    )
    verdict = judge_release(baseline, current, policy.limits(judge_latency=warm))
    latest = {"at": now.isoformat(), "traffic": current.as_dict(), "judged": verdict.judged, "reasons": verdict.reasons}
    DeploymentWatch.objects.filter(pk=watch.pk).update(latest=latest, last_checked_at=now, checks=watch.checks + 1)
    if verdict.breached:
        return _roll_back(watch, "; ".join(verdict.reasons), now)
    if now >= watch.ends_at:
        return _finish(watch, DeploymentWatch.State.PASSED, now, reason="no breach during the watch")
    if chain:
        _look_again(watch)
    return watch.state


def check_watches(*, now: datetime | None = None) -> dict[str, int]:
    """Beat's sweep: a look at every running watch not looked at for a while (lost chains)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.ALERTS_WATCH_CHECK_SECONDS * 2)
    ids = DeploymentWatch.objects.filter(state=DeploymentWatch.State.WATCHING).filter(
        Q(last_checked_at__isnull=True) | Q(last_checked_at__lt=stale)
    )
    outcome: dict[str, int] = {}
    for pk in ids.values_list("pk", flat=True):
        state = check_watch(pk, now=now, chain=False)
        outcome[state] = outcome.get(state, 0) + 1
    return outcome


def _look_again(watch: DeploymentWatch) -> None:
    send_task(CHECK_TASK, kwargs={"watch_id": watch.pk}, countdown=settings.ALERTS_WATCH_CHECK_SECONDS)


def _finish(watch: DeploymentWatch, state: str, now: datetime, *, reason: str) -> str:
    DeploymentWatch.objects.filter(pk=watch.pk, state=DeploymentWatch.State.WATCHING).update(
        state=state, finished_at=now, reason=reason
    )
    logger.info("alerting.watch_finished model=%s state=%s reason=%s", watch.model.name, state, reason)
    return state


def _roll_back(watch: DeploymentWatch, reasons: str, now: datetime) -> str:
    # Claimed first: two looks at once (the chain and the sweep) roll back once.
    claimed = DeploymentWatch.objects.filter(pk=watch.pk, state=DeploymentWatch.State.WATCHING).update(
        state=DeploymentWatch.State.ROLLED_BACK, finished_at=now, reason=reasons
    )
    if not claimed:
        return DeploymentWatch.objects.get(pk=watch.pk).state
    version = watch.deployment.to_version
    reason = f"automatic rollback of {version.semantic_label}: {reasons}"
    try:
        # No actor: the product's own decision, recorded as the system's (Deployment.system).
        # Pinned to the watched version: a newer promotion made meanwhile is not undone by this watch.
        rollback = rollback_model(watch.model, actor=None, reason=reason, automatic=True, expected_from=version)
    except MlopsError as exc:
        DeploymentWatch.objects.filter(pk=watch.pk).update(reason=f"{reasons}; rollback refused: {exc.message}")
        logger.error("alerting.rollback_refused model=%s error=%s", watch.model.name, exc.message)
        return DeploymentWatch.State.ROLLED_BACK
    DeploymentWatch.objects.filter(pk=watch.pk).update(rollback=rollback)
    logger.warning("alerting.rolled_back model=%s version=%s reason=%s", watch.model.name, version, reasons)
    send_task(EVALUATE_TASK, kwargs={"kinds": [AlertRule.Kind.AUTO_ROLLBACK], "model_name": watch.model.name})
    return DeploymentWatch.State.ROLLED_BACK
