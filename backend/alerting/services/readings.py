"""What each kind of rule reads: one Observation per scope (a model, or the installation).

Per-model rules read the production version's recent prediction log (straight from the log, so
an error spike is seen within the minute, not after the next roll-up), its latest drift check,
its failed training jobs and its load error. Installation rules read the disk and the monitor's
own heartbeats. A reading with too little behind it is None: it neither breaches nor clears.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.urls import reverse
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from backend.alerting.models import AlertRule
from backend.monitoring.models import DriftReport, PerformanceBucket
from backend.monitoring.services.performance import window_performance
from backend.registry.models import Deployment, ModelVersion, RegisteredModel
from backend.training.models import TrainingJob
from mlops.alerting.rules import Observation

Kind = AlertRule.Kind

# The monitor's heartbeats: beat sending this schedule, and a worker finishing its task.
HEARTBEAT_SCHEDULE = "monitoring-roll-up-performance"
HEARTBEAT_TASK = "monitoring.roll_up_performance"


def observe(rule: AlertRule, *, now: datetime, model_name: str | None = None) -> list[Observation]:
    """The rule's readings now: one per model in its scope (or only `model_name`), or one for the installation."""
    if not rule.per_model:
        return [INSTALLATION_READERS[rule.kind](rule, now)]
    models = (
        RegisteredModel.objects.all() if rule.model_id is None else RegisteredModel.objects.filter(pk=rule.model_id)
    )
    if model_name is not None:
        models = models.filter(name=model_name)
    if rule.model_id is None:
        models = models.filter(versions__status=ModelVersion.Status.PRODUCTION).distinct()
    reader = MODEL_READERS[rule.kind]
    return [reader(rule, model, now) for model in models.order_by("name")]


# -- per model -----------------------------------------------------------------------------------
def _drift(rule: AlertRule, model: RegisteredModel, now: datetime) -> Observation:
    report = (
        DriftReport.objects.filter(model=model, created_at__gte=now - rule.window)
        .exclude(status__in=[DriftReport.Status.FAILED, DriftReport.Status.NOT_ENOUGH_DATA])
        .select_related("version")
        .first()
    )
    if report is None:
        return Observation(model.name, None, summary="no drift check in the window")
    columns = report.drifted_columns()
    return Observation(
        model.name,
        1.0 if report.drifted else 0.0,
        samples=report.current_size,
        evidence={
            "drift_report": report.pk,
            "url": reverse("monitoring:drift-report", args=[report.pk]),
            "version": report.version.version,
            "drifted_share": report.drifted_share,
            "drifted_columns": columns,
        },
        summary=(
            f"drift on {model.name} {report.version.semantic_label}: {len(columns)} of {len(report.columns)} "
            f"columns drifted ({', '.join(columns[:6])})"
            if report.drifted
            else f"no drift on {model.name} {report.version.semantic_label} in the latest check"
        ),
    )


def _performance(field: Callable[[dict], tuple[float | None, int]], describe: str):
    """A reader of the production version's numbers over the rule's window, from the prediction log."""

    def read(rule: AlertRule, model: RegisteredModel, now: datetime) -> Observation:
        version = model.production_version
        start = now - rule.window
        evidence = {"window_start": start.isoformat(), "window_end": now.isoformat()}
        if version is None:
            return Observation(model.name, None, evidence=evidence, summary="nothing in production")
        numbers = version_numbers(version.pk, start, now)
        value, samples = field(numbers) if numbers else (None, 0)
        evidence |= {
            "version": version.version,
            "url": reverse("monitoring:dashboard", args=[model.name]),
            "requests": numbers["requests"] if numbers else 0,
            "errors": numbers["errors_by_code"] if numbers else {},
        }
        if value is None or samples < max(rule.min_samples, 1):
            return Observation(
                model.name, None, samples=samples, evidence=evidence, summary=f"{samples} samples in the window"
            )
        return Observation(
            model.name,
            round(value, 4),
            samples=samples,
            evidence=evidence,
            summary=f"{describe} of {model.name} {version.semantic_label} was {value:.4g} over the last "
            f"{rule.window_minutes} min ({samples} samples; threshold {rule.comparison} {rule.threshold:g})",
        )

    return read


# Windows up to this long are read from the prediction log itself (exact, and current to the
# second); longer ones from the minute roll-ups (a minute or two behind, and p95 as the mean of
# the minutes' p95 weighted by requests), so a day-long accuracy rule never scans a day of log.
RAW_WINDOW = timedelta(hours=1)


def version_numbers(version_id: int, start: datetime, end: datetime) -> dict | None:
    """A version's numbers over [start, end), in the fields of a performance bucket."""
    if end - start <= RAW_WINDOW:
        return _raw_window(start, end).get(version_id)
    buckets = list(PerformanceBucket.objects.filter(version_id=version_id, seconds=60, start__gte=start, start__lt=end))
    if not buckets:
        return None
    errors: Counter = Counter()
    for bucket in buckets:
        errors.update(bucket.errors_by_code)
    return {
        "requests": sum(b.requests for b in buckets),
        "predictions": sum(b.predictions for b in buckets),
        "errors": sum(b.errors for b in buckets),
        "errors_by_code": dict(errors),
        "latency_p95_ms": _weighted([(b.latency_p95_ms, b.requests) for b in buckets]),
        "confidence_mean": _weighted([(b.confidence_mean, b.predictions) for b in buckets]),
        "feedback": sum(b.feedback for b in buckets),
        "feedback_correct": sum(b.feedback_correct for b in buckets),
    }


@lru_cache(maxsize=8)
def _raw_window(start: datetime, end: datetime) -> dict[int, dict]:
    """Every version's numbers over the window: one read of the log for all the rules of one evaluation."""
    return window_performance(start, end)


def _weighted(pairs: list[tuple[float | None, int]]) -> float | None:
    known = [(value, weight) for value, weight in pairs if value is not None and weight]
    total = sum(weight for _, weight in known)
    return sum(value * weight for value, weight in known) / total if total else None


def _error_rate(numbers: dict) -> tuple[float | None, int]:
    total = numbers["requests"] + numbers["errors"]
    return (numbers["errors"] / total if total else None), total


def _accuracy(numbers: dict) -> tuple[float | None, int]:
    feedback = numbers["feedback"]
    return (numbers["feedback_correct"] / feedback if feedback else None), feedback


def _training_failed(rule: AlertRule, model: RegisteredModel, now: datetime) -> Observation:
    failed = list(
        TrainingJob.objects.filter(
            model_name=model.name, status=TrainingJob.Status.FAILED, finished_at__gte=now - rule.window
        ).values("pk", "error_code", "error")[:20]
    )
    last = failed[0] if failed else None
    return Observation(
        model.name,
        float(len(failed)),
        evidence={"jobs": [job["pk"] for job in failed], "last_error": last and last["error"][:500]},
        summary=(
            f"{len(failed)} training job(s) of {model.name} failed in the last {rule.window_minutes} min; "
            f"the latest (job {last['pk']}): {last['error_code']}: {last['error'][:200]}"
            if last
            else f"no failed training job of {model.name}"
        ),
    )


def _auto_rollback(rule: AlertRule, model: RegisteredModel, now: datetime) -> Observation:
    rollbacks = list(
        Deployment.objects.filter(
            model=model, action=Deployment.Action.AUTO_ROLLBACK, succeeded=True, created_at__gte=now - rule.window
        ).select_related("from_version", "to_version")[:10]
    )
    last = rollbacks[0] if rollbacks else None
    return Observation(
        model.name,
        float(len(rollbacks)),
        evidence={
            "deployments": [d.pk for d in rollbacks],
            "url": reverse("monitoring:dashboard", args=[model.name]),
            "reason": last.reason if last else "",
        },
        summary=(
            f"{model.name} was rolled back from {last.from_version.semantic_label} to "
            f"{last.to_version.semantic_label} by itself: {last.reason}"
            if last
            else f"no automatic rollback of {model.name} in the last {rule.window_minutes} min"
        ),
    )


def _review(rule: AlertRule, model: RegisteredModel, now: datetime) -> Observation:
    """Versions a training job staged instead of promoting (they did not win by the margin)."""
    waiting = list(
        TrainingJob.objects.filter(
            model_name=model.name,
            status=TrainingJob.Status.SUCCEEDED,
            auto_promote=True,
            promotion_error__startswith="not promoted",
            model_version__status=ModelVersion.Status.STAGING,
        )
        .select_related("model_version")
        .order_by("-finished_at")[:10]
    )
    last = waiting[0] if waiting else None
    return Observation(
        model.name,
        float(len(waiting)),
        evidence={
            "jobs": [job.pk for job in waiting],
            "versions": [job.model_version.version for job in waiting],
            "comparison": last.comparison if last else {},
        },
        summary=(
            f"{model.name} {last.model_version.semantic_label} (training job #{last.pk}) waits for review: "
            f"{last.promotion_error}"
            if last
            else f"no retrained version of {model.name} waits for review"
        ),
    )


def _load_failed(rule: AlertRule, model: RegisteredModel, now: datetime) -> Observation:
    version = model.production_version
    if version is None:
        return Observation(model.name, None, summary="nothing in production")
    failed = bool(version.load_error)
    return Observation(
        model.name,
        1.0 if failed else 0.0,
        evidence={"version": version.version, "error": version.load_error[:500]},
        summary=(
            f"{model.name} {version.semantic_label} failed to load: {version.load_error[:300]}"
            if failed
            else f"{model.name} {version.semantic_label} loads"
        ),
    )


MODEL_READERS = {
    Kind.DRIFT: _drift,
    Kind.LATENCY_P95: _performance(lambda n: (n["latency_p95_ms"], n["requests"]), "latency p95 (ms)"),
    Kind.ERROR_RATE: _performance(_error_rate, "error rate"),
    Kind.CONFIDENCE: _performance(lambda n: (n["confidence_mean"], n["predictions"]), "average confidence"),
    Kind.ACCURACY: _performance(_accuracy, "accuracy from feedback"),
    Kind.TRAINING_FAILED: _training_failed,
    Kind.LOAD_FAILED: _load_failed,
    Kind.AUTO_ROLLBACK: _auto_rollback,
    Kind.REVIEW: _review,
}


# -- the installation ----------------------------------------------------------------------------
def _disk_free(rule: AlertRule, now: datetime) -> Observation:
    folders = {"var": settings.VAR_DIR}
    if not settings.MEDIA_BUCKET:  # media in a bucket take no local disk
        folders["media"] = settings.MEDIA_ROOT
    free = {}
    for name, folder in folders.items():
        usage = shutil.disk_usage(_existing(Path(folder)))
        free[name] = round(100 * usage.free / usage.total, 2)
    lowest = min(free, key=free.get)
    return Observation(
        "",
        free[lowest],
        evidence={"free_percent": free, "folders": {k: str(v) for k, v in folders.items()}},
        summary=f"{free[lowest]:.1f}% of the disk under {folders[lowest]} ({lowest}) is free",
    )


def _existing(folder: Path) -> Path:
    """The folder, or its nearest parent that exists (the media folder appears with the first upload)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _monitor_stopped(rule: AlertRule, now: datetime) -> Observation:
    """A dead man's switch: minutes since beat last sent the roll-up, or a worker last finished one,
    whichever is older (either stopping stops the monitoring)."""
    sent = PeriodicTask.objects.filter(name=HEARTBEAT_SCHEDULE).values_list("last_run_at", flat=True).first()
    done = (
        TaskResult.objects.filter(task_name=HEARTBEAT_TASK, status="SUCCESS")
        .order_by("-date_done")
        .values_list("date_done", flat=True)
        .first()
    )
    beats = {"beat_sent_at": sent, "worker_done_at": done}
    known = [moment for moment in beats.values() if moment is not None]
    if not known:
        return Observation("", None, summary="the monitor has not run yet")
    oldest = min(known)
    minutes = max(0.0, (now - oldest).total_seconds() / 60)
    return Observation(
        "",
        round(minutes, 2),
        evidence={key: value and value.isoformat() for key, value in beats.items()},
        summary=f"the monitor last ran {minutes:.0f} min ago (beat sent {sent or 'never'}, "
        f"a worker finished {done or 'never'})",
    )


INSTALLATION_READERS = {Kind.DISK_FREE: _disk_free, Kind.MONITOR_STOPPED: _monitor_stopped}
