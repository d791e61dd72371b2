"""Continuous training: a model's TrainingPolicy starts a training job when drift is found, enough
new feedback came in, its schedule comes round, or its performance dropped.

At most one job per model at a time (the job's dedupe key), and never twice within the policy's
quiet time. The job compares the new version with production on the same holdout and promotes it
only when it wins by the policy's margin; otherwise it stages it, and the "review" rule raises an
alert asking someone to look (see backend.training.runner).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from backend.alerting.models import TrainingPolicy
from backend.classification.models import ClassificationFeedback
from backend.detection.models import Feedback
from backend.training.services import JobConflict, active_job_for, start_job
from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)

DRIFT, FEEDBACK, SCHEDULE, PERFORMANCE = "drift", "feedback", "schedule", "performance drop"


def retrain(model_name: str, *, cause: str, detail: str = "", now: datetime | None = None):
    """Start the policy's training job for `cause`, unless the policy says no; returns the job or None."""
    now = now or timezone.now()
    policy = TrainingPolicy.objects.select_related("model").filter(model__name=model_name, enabled=True).first()
    if policy is None or not _wants(policy, cause):
        return None
    if policy.last_triggered_at and now - policy.last_triggered_at < timedelta(hours=policy.quiet_hours):
        return _outcome(policy, f"{cause}: skipped, within {policy.quiet_hours:g} h of the last retraining", None)
    running = active_job_for(model_name)
    if running is not None:
        return _outcome(policy, f"{cause}: skipped, job #{running.pk} is already {running.status}", None)
    trigger = f"training policy: {cause}" + (f" ({detail})" if detail else "")
    try:
        job = start_job(
            policy.model.kind,
            model_name=model_name,
            dataset=policy.dataset,
            params=policy.params,
            auto_promote=policy.auto_promote,
            promote_margin=policy.promote_margin,
            dedupe_key=f"policy:{model_name}",
            # No person: the job is the system's, and so is its promotion. Who may make a policy promote by
            # itself is checked where policies are edited (the admin asks for the promote permission).
            user=None,
            trigger=trigger,
        )
    except JobConflict:
        return _outcome(policy, f"{cause}: skipped, another policy job is queued or running", None)
    except MlopsError as exc:
        return _outcome(policy, f"{cause}: the job was refused: {exc.message}", None)
    TrainingPolicy.objects.filter(pk=policy.pk).update(last_triggered_at=now, last_job=job)
    logger.info("alerting.retraining model=%s cause=%s job=%s", model_name, cause, job.pk)
    return _outcome(policy, f"{cause}: started training job #{job.pk}", job)


def run_policies(*, now: datetime | None = None) -> list[int]:
    """Beat's look at the schedule and feedback triggers of every enabled policy; the started job ids."""
    now = now or timezone.now()
    started = []
    for policy in TrainingPolicy.objects.filter(enabled=True).filter(Q(every_hours__gt=0) | Q(feedback_samples__gt=0)):
        since = policy.last_triggered_at
        if policy.every_hours and (since is None or now - since >= timedelta(hours=policy.every_hours)):
            job = retrain(policy.model.name, cause=SCHEDULE, detail=f"every {policy.every_hours} h", now=now)
        elif policy.feedback_samples and (count := _new_feedback(policy, since)) >= policy.feedback_samples:
            job = retrain(policy.model.name, cause=FEEDBACK, detail=f"{count} new trusted feedback verdicts", now=now)
        else:
            continue
        if job is not None:
            started.append(job.pk)
    return started


def _new_feedback(policy: TrainingPolicy, since: datetime | None) -> int:
    """Verdicts of trusted reviewers only: they are the labels a retraining learns from, and anonymous
    verdicts must not be a way to start training jobs."""
    if policy.model.kind == policy.model.Kind.CLASSIFICATION:
        verdicts = ClassificationFeedback.objects.trusted().filter(classification__model_version__model=policy.model)
    else:
        verdicts = Feedback.objects.trusted().filter(detection__model_version__model=policy.model)
    return (verdicts.filter(created_at__gt=since) if since else verdicts).count()


def _wants(policy: TrainingPolicy, cause: str) -> bool:
    return {
        DRIFT: policy.on_drift,
        PERFORMANCE: policy.on_performance_drop,
        FEEDBACK: policy.feedback_samples > 0,
        SCHEDULE: policy.every_hours > 0,
    }.get(cause, False)


def _outcome(policy: TrainingPolicy, outcome: str, job):
    TrainingPolicy.objects.filter(pk=policy.pk).update(last_outcome=outcome[:2000])
    logger.info("alerting.policy model=%s outcome=%s", policy.model.name, outcome)
    return job
