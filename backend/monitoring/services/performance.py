"""Performance roll-ups: the prediction log summed per version and time bucket, so that dashboards
and the API never scan the raw log.

A run rolls every complete bucket since the last one it stored (re-rolling that one, which may
have got late log writes) up to now; each bucket is one upsert, so runs are idempotent and a
missed run is caught up by the next. Two sizes are kept: minutes for the recent past, hours for
days and weeks.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Max
from django.utils import timezone

from backend.classification.models import Classification, ClassificationFeedback
from backend.core.models import PredictionError
from backend.detection.models import Detection, Feedback
from backend.monitoring.models import PerformanceBucket
from backend.registry.models import ModelVersion
from backend.scoring.models import TabularPrediction

logger = logging.getLogger(__name__)

BUCKET_SIZES = (60, 3600)
# How far back the first run (or one after a long outage) rolls up, per bucket size.
LOOKBACK = {60: timedelta(hours=6), 3600: timedelta(days=7)}
CONFIDENCE_BINS = 10


@dataclass
class _Tally:
    """One version's numbers in one bucket while they are being summed."""

    latencies: list[float] = field(default_factory=list)
    inference: list[float] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    classes: Counter = field(default_factory=Counter)
    requests: set = field(default_factory=set)
    predictions: int = 0
    feedback: int = 0
    feedback_correct: int = 0
    errors: Counter = field(default_factory=Counter)

    def as_fields(self) -> dict:
        latency = np.asarray(self.latencies, dtype=float)
        confidence = np.asarray(self.confidences, dtype=float)
        p50, p95, p99 = np.percentile(latency, [50, 95, 99]) if latency.size else (None, None, None)
        histogram = np.histogram(np.clip(confidence, 0, 1), bins=CONFIDENCE_BINS, range=(0, 1))[0]
        return {
            "requests": len(self.requests),
            "predictions": self.predictions,
            "latency_p50_ms": _round(p50),
            "latency_p95_ms": _round(p95),
            "latency_p99_ms": _round(p99),
            "inference_mean_ms": _round(np.mean(self.inference)) if self.inference else None,
            "confidence_mean": _round(confidence.mean(), 4) if confidence.size else None,
            "confidence_histogram": [int(count) for count in histogram],
            "class_counts": dict(self.classes),
            "feedback": self.feedback,
            "feedback_correct": self.feedback_correct,
            "errors": sum(self.errors.values()),
            "errors_by_code": dict(self.errors),
        }


def _round(value, digits: int = 3):
    return None if value is None else round(float(value), digits)


def bucket_start(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=moment.tzinfo or timezone.get_current_timezone())


def roll_up(*, now: datetime | None = None) -> dict[int, int]:
    """Roll up every bucket size; returns {bucket seconds: buckets written}."""
    now = now or timezone.now()
    return {seconds: roll_up_size(seconds, now=now) for seconds in BUCKET_SIZES}


def roll_up_size(seconds: int, *, now: datetime) -> int:
    """The complete buckets of one size since the last stored one (included), up to `now`."""
    end = bucket_start(now, seconds)
    last = PerformanceBucket.objects.filter(seconds=seconds).aggregate(last=Max("start"))["last"]
    start = last if last is not None else bucket_start(now - LOOKBACK[seconds], seconds)
    start = max(start, bucket_start(now - LOOKBACK[seconds], seconds))
    if start >= end:
        return 0
    tallies = _tally(start, end, lambda moment: bucket_start(moment, seconds))
    versions = dict(ModelVersion.objects.filter(pk__in={key[0] for key in tallies}).values_list("pk", "model_id"))
    for (version_id, bucket), tally in tallies.items():
        PerformanceBucket.objects.update_or_create(
            version_id=version_id,
            seconds=seconds,
            start=bucket,
            defaults={"model_id": versions[version_id], **tally.as_fields()},
        )
    logger.info("monitoring.performance_rolled seconds=%s from=%s to=%s buckets=%s", seconds, start, end, len(tallies))
    return len(tallies)


def window_performance(start: datetime, end: datetime) -> dict[int, dict]:
    """Each version's numbers over [start, end) read straight from the log, as one bucket's fields.

    For alert rules, which judge the last few minutes as they happen rather than once a minute's
    roll-up has run.
    """
    return {version_id: tally.as_fields() for (version_id, _), tally in _tally(start, end, lambda _: start).items()}


def _tally(
    start: datetime, end: datetime, bucket: Callable[[datetime], datetime]
) -> dict[tuple[int, datetime], _Tally]:
    """The log between start and end summed per version and bucket (`bucket` maps a moment to its bucket)."""
    tallies: dict[tuple[int, datetime], _Tally] = defaultdict(_Tally)

    def of(version_id: int, moment: datetime) -> _Tally:
        return tallies[(version_id, bucket(moment))]

    window = {"created_at__gte": start, "created_at__lt": end}
    detections = Detection.objects.filter(**window).values_list(
        "pk", "model_version_id", "created_at", "latency_ms", "inference_ms", "max_confidence", "boxes"
    )
    for pk, version_id, created, latency, inference, confidence, boxes in detections.iterator(chunk_size=2000):
        tally = of(version_id, created)
        tally.requests.add(pk)
        tally.predictions += 1
        tally.latencies.append(latency)
        tally.inference.append(inference)
        tally.confidences.append(confidence or 0.0)
        tally.classes.update(box["class_name"] for box in boxes)
    records = TabularPrediction.objects.filter(**window).values_list(
        "request_id", "model_version_id", "created_at", "latency_ms", "confidence", "label", "record_index"
    )
    for request_id, version_id, created, latency, confidence, label, index in records.iterator(chunk_size=2000):
        tally = of(version_id, created)
        if index == 0:  # one latency per call, however many records it scored
            tally.latencies.append(latency)
        tally.requests.add(request_id)
        tally.predictions += 1
        tally.confidences.append(confidence)
        tally.classes[label] += 1
    classifications = Classification.objects.filter(**window).values_list(
        "pk", "model_version_id", "created_at", "latency_ms", "inference_ms", "confidence", "class_name"
    )
    for pk, version_id, created, latency, inference, confidence, class_name in classifications.iterator(
        chunk_size=2000
    ):
        tally = of(version_id, created)
        tally.requests.add(pk)
        tally.predictions += 1
        tally.latencies.append(latency)
        tally.inference.append(inference)
        tally.confidences.append(confidence)
        tally.classes[class_name] += 1
    for feedback, version_field in (
        (Feedback, "detection__model_version_id"),
        (ClassificationFeedback, "classification__model_version_id"),
    ):
        verdicts = feedback.objects.filter(**window).values_list(version_field, "created_at", "verdict")
        for version_id, created, verdict in verdicts.iterator(chunk_size=2000):
            tally = of(version_id, created)
            tally.feedback += 1
            tally.feedback_correct += verdict == feedback.Verdict.CORRECT
    _tally_errors(window, of)
    return tallies


def _tally_errors(window: dict, of) -> None:
    """Errors name a model, not a version (a rejected upload never reached one): each counts for the
    version in production when the roll-up runs; errors of unknown models or of models with nothing
    in production are left out (they stay on /metrics and in the error rows)."""
    errors = list(PredictionError.objects.filter(**window).values_list("model_name", "created_at", "code"))
    names = {name for name, _, _ in errors}
    production = dict(
        ModelVersion.objects.filter(model__name__in=names, status=ModelVersion.Status.PRODUCTION).values_list(
            "model__name", "pk"
        )
    )
    for name, created, code in errors:
        if name in production:
            of(production[name], created).errors[code] += 1
