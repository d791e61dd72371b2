"""Continuous training, end to end on a real worker: drift found by a real check starts a training
job through the model's policy; the new version is promoted when it beats production on the same
holdout by the margin, and staged (with an alert asking for review) when it does not."""

from __future__ import annotations

import pytest
from django.utils import timezone

from backend.alerting.models import Alert, AlertRule, TrainingPolicy
from backend.alerting.services import retraining
from backend.monitoring.tasks import check_drift
from backend.registry.models import ModelVersion
from backend.training.models import TrainingJob
from tests.factories import TrainingJobFactory
from tests.helpers import post_records, stream_from, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

TRAINING = {"n_estimators": 8}


def drifted_check(name: str, breast_cancer, seed: int) -> None:
    shifted = stream_from(breast_cancer, 200, seed=seed)
    post_records(shifted * 1.6 + shifted.std() * 0.5)
    assert check_drift.delay(model_name=name).get(timeout=180)["status"] == "drift"


def job_after(name: str, previous: int | None) -> TrainingJob:
    def ended():
        job = TrainingJob.objects.filter(model_name=name).exclude(pk=previous).order_by("-pk").first()
        return job if job and job.status in TrainingJob.FINAL_STATUSES else None

    return wait_until(ended, timeout=300, interval=0.5, what="the policy's training job to end")


@pytest.mark.worker
def test_drift_retrains_and_promotes_only_a_version_that_wins_by_the_margin(
    celery_worker_process, tabular_with_reference, breast_cancer
):
    model = tabular_with_reference.model
    review = AlertRule.objects.create(
        name="review", kind="review", comparison=">=", threshold=1, window_minutes=60, severity="info"
    )
    # A margin no model can reach (the primary metric would have to rise by more than 1): staged.
    policy = TrainingPolicy.objects.create(
        model=model, on_drift=True, auto_promote=True, promote_margin=1.5, quiet_hours=0, params=TRAINING
    )
    drifted_check(model.name, breast_cancer, seed=2)
    staged = job_after(model.name, None)
    assert staged.status == "succeeded", staged.traceback
    assert staged.trigger.startswith("training policy: drift (drift report #")
    assert staged.comparison["baseline_version"] == tabular_with_reference.version
    assert staged.comparison["verdict"] in ("better", "worse", "equal")
    assert staged.promotion_error.startswith("not promoted:") and "short of the margin" in staged.promotion_error
    assert staged.model_version.status == ModelVersion.Status.STAGING
    assert ModelVersion.objects.get(pk=tabular_with_reference.pk).status == ModelVersion.Status.PRODUCTION
    policy.refresh_from_db()
    assert policy.last_job_id == staged.pk and "started training job" in policy.last_outcome
    # The review rule asks someone to look.
    retraining_alert = wait_until(lambda: _evaluated(review), timeout=30, what="the review alert")
    assert retraining_alert.evidence["jobs"] == [staged.pk]

    # A margin any version reaches: the next drifted check retrains and promotes.
    TrainingPolicy.objects.filter(pk=policy.pk).update(promote_margin=-1.5)
    drifted_check(model.name, breast_cancer, seed=3)
    promoted = job_after(model.name, staged.pk)
    assert promoted.status == "succeeded", promoted.traceback
    assert promoted.promotion_error == ""
    assert promoted.model_version.status == ModelVersion.Status.PRODUCTION
    deployment = promoted.model_version.deployments_to.get()
    assert "against production" in deployment.reason
    # Nobody asked for the job: the promotion is the system's, and says which policy started it.
    assert (deployment.actor, deployment.system) == (None, True)
    assert "training policy: drift" in deployment.reason


def _evaluated(rule: AlertRule):
    from backend.alerting.services.evaluation import evaluate_rules

    evaluate_rules(kinds=[rule.kind])
    return Alert.objects.filter(rule=rule).first()


def test_a_policy_starts_one_job_at_a_time_and_respects_its_quiet_time(register_tabular):
    version = register_tabular(0)
    name = version.model.name
    policy = TrainingPolicy.objects.create(model=version.model, quiet_hours=0, params=TRAINING, on_drift=True)
    queued = TrainingJobFactory(model_name=name)  # not sent to any worker
    assert retraining.retrain(name, cause="drift") is None
    policy.refresh_from_db()
    assert f"job #{queued.pk} is already queued" in policy.last_outcome
    TrainingJob.objects.filter(pk=queued.pk).update(status="succeeded")
    TrainingPolicy.objects.filter(pk=policy.pk).update(quiet_hours=6, last_triggered_at=timezone.now())
    assert retraining.retrain(name, cause="drift") is None
    policy.refresh_from_db()
    assert "within 6 h" in policy.last_outcome
    TrainingPolicy.objects.filter(pk=policy.pk).update(on_drift=False, quiet_hours=0)
    assert retraining.retrain(name, cause="drift") is None  # that trigger is off
    assert retraining.retrain(name, cause="schedule") is None  # and so is the schedule (every_hours 0)
    assert TrainingJob.objects.count() == 1
