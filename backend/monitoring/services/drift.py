"""Drift checks: a production version's recent predictions against its reference, stored as a row.

The reference is the table saved with the version at training; a version registered from files
without one is compared with its own first N production predictions, and the report says so. The
prepared reference is kept per process (one DriftDetector per version and settings), windows are
read in bulk and sampled above `max_rows`, so a check costs the same whatever the log size.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from backend.core.mlops_config import mlops_config
from backend.monitoring.models import DriftReport, DriftSettings
from backend.monitoring.services.predictions import LoggedWindow, PredictionLog, log_of
from backend.monitoring.signals import drift_detected
from backend.registry.models import ModelVersion, RegisteredModel
from mlops.exceptions import InvalidInput, ModelUnavailable
from mlops.monitoring.drift import DriftConfig, DriftDetector, DriftStatus
from mlops.registry.artifacts import fetch_artifact
from mlops.registry.entities import ArtifactRole

logger = logging.getLogger(__name__)

DETECTOR_CACHE_SIZE = 16


@dataclass(frozen=True)
class Window:
    """Which predictions a check looks at: the latest N, or those of the last T hours."""

    predictions: int | None = None
    hours: float | None = None

    def __post_init__(self) -> None:
        if self.predictions is not None and self.predictions < 1:
            raise InvalidInput("window predictions must be a positive number", code="bad_window")
        if self.hours is not None and self.hours <= 0:
            raise InvalidInput("window hours must be positive", code="bad_window")

    @classmethod
    def of(cls, settings: DriftSettings) -> Window:
        if settings.window_hours:
            return cls(hours=float(settings.window_hours))
        return cls(predictions=settings.window_predictions)

    def to_dict(self) -> dict:
        return {"hours": self.hours} if self.hours is not None else {"predictions": self.predictions}

    def __str__(self) -> str:
        return f"last {self.hours:g} h" if self.hours is not None else f"last {self.predictions} predictions"


@dataclass(frozen=True)
class Reference:
    """The table a version's windows are compared with, and where it came from."""

    frame: pd.DataFrame
    source: str
    # With a reference made of the first production predictions, windows start after them.
    after: object | None = None


def drift_settings(model: RegisteredModel) -> DriftSettings:
    """The model's settings row, or the defaults (unsaved) when it has none."""
    return DriftSettings.objects.filter(model=model).first() or DriftSettings(model=model)


def check_drift(
    model_name: str,
    *,
    window: Window | None = None,
    version: int | None = None,
    trigger: str = DriftReport.Trigger.SCHEDULE,
) -> DriftReport:
    """Check the production version (or `version`) of `model_name` now; always leaves a DriftReport row.

    A check that cannot run (no reference yet, a missing artifact) is stored as `failed` with the
    reason; `drift_detected` goes out on commit when the check flags drift.
    """
    model = RegisteredModel.objects.named(model_name)
    target = _version(model, version)
    settings = drift_settings(model)
    config = settings.config()
    window = window or Window.of(settings)
    started = time.perf_counter()
    row = DriftReport(model=model, version=target, trigger=trigger, window=window.to_dict(), settings=config.to_dict())
    html = ""
    try:
        html = _run(row, target, settings, config, window)
    except (InvalidInput, ModelUnavailable, OSError, ValueError) as exc:
        row.status, row.message = DriftReport.Status.FAILED, f"{type(exc).__name__}: {exc}"
        logger.warning("monitoring.drift_failed model=%s version=%s error=%s", model.name, target.version, exc)
    row.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return _save(row, html)


def _version(model: RegisteredModel, number: int | None) -> ModelVersion:
    versions = model.versions.select_related("model")
    found = versions.filter(version=number).first() if number else model.production_version
    if found is None:
        what = f"version {number}" if number else "a production version"
        raise ModelUnavailable(f"{model.name} has no {what} to check.", code="no_version_to_check")
    return found


def _run(row: DriftReport, version: ModelVersion, settings: DriftSettings, config: DriftConfig, window: Window) -> str:
    """Fill the report row from a check; returns Evidently's HTML ("" when there is none)."""
    log = log_of(version)
    reference = _reference(version, log, settings, config)
    current = _window(version, log, window, reference, config)
    row.reference_source = reference.source
    row.window_start, row.window_end = current.start, current.end
    if reference.frame.empty:
        row.status = DriftReport.Status.NOT_ENOUGH_DATA
        row.message = f"{reference.source}: the reference is not complete yet."
        row.current_size = current.rows
        return ""
    report = _detector(version, log, reference, config).check(current.frame, html=True)
    row.status = DriftReport.Status(str(report.status))
    row.message = report.message
    row.reference_size, row.current_size = report.reference_size, report.current_size
    row.drifted_share = report.drifted_share if report.status != DriftStatus.NOT_ENOUGH_DATA else None
    row.dataset_drift = report.dataset_drift
    row.columns = [column.to_dict() for column in report.columns]
    return report.html


def _reference(version: ModelVersion, log: PredictionLog, settings: DriftSettings, config: DriftConfig) -> Reference:
    artifact = version.artifact(ArtifactRole.REFERENCE)
    if artifact is not None and not version.artifacts_deleted_at:
        path = fetch_artifact(artifact, mlops_config().version_cache_dir(version.model.name, version.version))
        return Reference(log.reference_frame(pd.read_parquet(path), version), "training reference")
    wanted = settings.reference_predictions
    first = log.queryset(version).order_by("created_at")[:wanted]
    source = f"first {wanted} production predictions (the version has no training reference)"
    read = log.read(first, version, cap=max(wanted, 1))
    if read.rows < wanted:
        return Reference(pd.DataFrame(), f"{source}: {read.rows} so far")
    return Reference(read.frame, source, after=read.end)


def _window(version, log: PredictionLog, window: Window, reference: Reference, config: DriftConfig) -> LoggedWindow:
    rows = log.queryset(version)
    if reference.after is not None:
        rows = rows.filter(created_at__gt=reference.after)
    if window.hours is not None:
        rows = rows.filter(created_at__gte=timezone.now() - timedelta(hours=window.hours))
    else:
        rows = rows.order_by("-created_at")[: window.predictions]
    return log.read(rows, version, cap=config.max_rows, seed=config.seed)


_detectors: OrderedDict[tuple, DriftDetector] = OrderedDict()
_detectors_lock = threading.Lock()


def _detector(version: ModelVersion, log: PredictionLog, reference: Reference, config: DriftConfig) -> DriftDetector:
    """One prepared detector per version, reference and settings, reused by later checks in this process."""
    key = (version.pk, reference.source, len(reference.frame), repr(config.to_dict()))
    with _detectors_lock:
        if key in _detectors:
            _detectors.move_to_end(key)
            return _detectors[key]
    detector = DriftDetector(reference.frame, categorical=log.categorical, config=config)
    with _detectors_lock:
        _detectors[key] = detector
        while len(_detectors) > DETECTOR_CACHE_SIZE:
            _detectors.popitem(last=False)
    return detector


def _save(row: DriftReport, html: str) -> DriftReport:
    """The row, its HTML report (gzipped: Evidently inlines its scripts, ~4 MB a report), and the signal."""
    with transaction.atomic():
        row.save()
        if html:
            data = ContentFile(gzip.compress(html.encode(), compresslevel=6))
            name = default_storage.save(f"drift-reports/{row.model.name}/{row.pk}.html.gz", data)
            DriftReport.objects.filter(pk=row.pk).update(html=name)
            row.html.name = name
        transaction.on_commit(lambda: drop_superseded_html(row))
        if row.status == DriftReport.Status.DRIFT:
            transaction.on_commit(lambda: drift_detected.send(sender=DriftReport, report=row))
    logger.info(
        "monitoring.drift_checked model=%s version=%s status=%s share=%s window=%s",
        row.model.name, row.version.version, row.status, row.drifted_share, row.current_size,
    )  # fmt: skip
    return row


def drop_superseded_html(report: DriftReport) -> int:
    """Keep Evidently's report for every check that flagged drift and for each version's latest check;
    the HTML of an older check without drift goes (its row, columns and scores stay)."""
    older = DriftReport.objects.filter(version_id=report.version_id, pk__lt=report.pk).exclude(html="")
    dropped = 0
    for pk, name in older.exclude(status=DriftReport.Status.DRIFT).values_list("pk", "html"):
        if DriftReport.objects.filter(pk=pk, html=name).update(html=""):
            default_storage.delete(name)
            dropped += 1
    return dropped
