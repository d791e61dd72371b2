"""Monitoring's series on /metrics, read from the database at each scrape (registered in apps.py)."""

from __future__ import annotations

from backend.core.metrics import ScrapeGauge
from backend.monitoring.models import DriftReport
from backend.registry.models import ModelVersion

DRIFT_SHARE = ScrapeGauge(
    "modelyard_drift_share",
    "Share of drifted columns in the latest drift check of each production version (by default a check "
    "flags drift from a quarter for detectors and classifiers, half for tabular models).",
    ("model", "version"),
)
DRIFT_DETECTED = ScrapeGauge(
    "modelyard_drift_detected", "1 when the latest check of the production version flagged drift.", ("model", "version")
)


def drift_metrics():
    """The latest check of every production version: its drifted share, and whether it flagged drift."""
    shares, flags = {}, {}
    production = ModelVersion.objects.filter(status=ModelVersion.Status.PRODUCTION).select_related("model")
    for version in production:
        latest = (
            DriftReport.objects.filter(version=version)
            .exclude(status__in=[DriftReport.Status.FAILED, DriftReport.Status.NOT_ENOUGH_DATA])
            .order_by("-created_at")
            .values_list("drifted_share", "status")
            .first()
        )
        if latest is None:
            continue
        labels = (version.model.name, str(version.version))
        shares[labels] = latest[0] or 0.0
        flags[labels] = 1.0 if latest[1] == DriftReport.Status.DRIFT else 0.0
    yield DRIFT_SHARE.family(shares)
    yield DRIFT_DETECTED.family(flags)
