"""Celery tasks of monitoring, on the `monitoring` queue (CELERY_TASK_ROUTES "monitoring.*")."""

from __future__ import annotations

from celery import shared_task

from backend.monitoring.models import DriftSettings
from backend.monitoring.services import performance, shadow


# No retries: a check that cannot run is stored as a failed DriftReport with its reason, and the
# next scheduled run checks again. Idempotent, so a doubled delivery only adds one more report.
@shared_task(name="monitoring.check_drift")
def check_drift(*, model_name: str) -> dict:
    # Imported here: drift brings pandas and Evidently, which the web process (it imports this
    # module for the admin's "check now") never needs.
    from backend.monitoring.services import drift

    report = drift.check_drift(model_name)
    return {"report": report.pk, "model": model_name, "status": report.status}


# Beat, hourly by default: one check per production model, each its own task so that one slow or
# broken model does not hold up the others.
@shared_task(name="monitoring.check_drift_of_production_models")
def check_drift_of_production_models() -> list[str]:
    names = DriftSettings.models_to_check()
    for name in names:
        check_drift.delay(model_name=name)
    return names


# Beat, every minute: idempotent upserts of the complete buckets since the last run, so a lost or
# doubled run costs nothing and the next one catches up.
@shared_task(name="monitoring.roll_up_performance")
def roll_up_performance() -> dict:
    return {str(seconds): written for seconds, written in performance.roll_up().items()}


# Shadow mode, one sampled prediction (or tabular call): no retries, a sample that cannot be
# compared is one sample fewer. Idempotent: a redelivered message saves nothing twice (one row per
# shadow version and prediction). Its limits stay far below the visibility timeout; the first task
# of a worker process also loads the staging version.
@shared_task(name="monitoring.compare_shadow", soft_time_limit=240, time_limit=300)
def compare_shadow(*, kind: str, model_name: str, prediction_ids: list[str]) -> dict:
    return shadow.compare_logged(kind=kind, model_name=model_name, prediction_ids=prediction_ids)
