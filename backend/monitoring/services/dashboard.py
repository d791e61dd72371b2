"""What the monitoring pages show, read from the roll-ups and the reports (never the raw log)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from backend.monitoring.models import DriftReport, PerformanceBucket
from backend.monitoring.services.shadow import shadow_summary
from backend.registry.models import Deployment, ModelVersion, RegisteredModel

SPANS = {"6h": (timedelta(hours=6), 60), "24h": (timedelta(hours=24), 3600), "7d": (timedelta(days=7), 3600)}
DEFAULT_SPAN = "6h"


@dataclass(frozen=True)
class ModelHealth:
    """One line of the models page: what serves, how it did in the last hour, its latest drift check."""

    model: RegisteredModel
    production: ModelVersion | None
    requests: int
    errors: int
    latency_p95_ms: float | None
    latest_drift: DriftReport | None

    @property
    def error_rate(self) -> float | None:
        total = self.requests + self.errors
        return self.errors / total if total else None

    @property
    def state(self) -> str:
        """ok, attention (drift or a failed load) or idle (nothing in production)."""
        if self.production is None:
            return "idle"
        if self.production.load_error or (self.latest_drift and self.latest_drift.drifted):
            return "attention"
        return "ok"


def model_health() -> list[ModelHealth]:
    since = timezone.now() - timedelta(hours=1)
    rows = []
    for model in RegisteredModel.objects.order_by("name"):
        production = model.production_version
        buckets = list(PerformanceBucket.objects.filter(model=model, seconds=60, start__gte=since))
        p95s = [b.latency_p95_ms for b in buckets if b.latency_p95_ms is not None]
        rows.append(
            ModelHealth(
                model=model,
                production=production,
                requests=sum(b.requests for b in buckets),
                errors=sum(b.errors for b in buckets),
                latency_p95_ms=max(p95s) if p95s else None,
                latest_drift=model.drift_reports.select_related("version__model").order_by("-created_at").first(),
            )
        )
    return rows


@dataclass(frozen=True)
class Dashboard:
    """One model's buckets, drift reports, deployments and shadow-mode agreement over a span."""

    model: RegisteredModel
    span: str
    since: datetime
    until: datetime
    buckets: list[PerformanceBucket]
    reports: list[DriftReport]
    deployments: list[Deployment]
    shadow: dict | None = None

    @property
    def class_mix(self) -> list[tuple[str, float]]:
        total: Counter = Counter()
        for bucket in self.buckets:
            total.update(bucket.class_counts)
        return sorted(total.items(), key=lambda item: -item[1])

    @property
    def confidence_histogram(self) -> list[tuple[str, float]]:
        counts = [0] * 10
        for bucket in self.buckets:
            for index, count in enumerate(bucket.confidence_histogram[:10]):
                counts[index] += count
        return [(f"{index / 10:.1f}", count) for index, count in enumerate(counts)]


def dashboard(model: RegisteredModel, span: str) -> Dashboard:
    length, seconds = SPANS.get(span, SPANS[DEFAULT_SPAN])
    since = timezone.now() - length
    buckets = PerformanceBucket.objects.filter(model=model, seconds=seconds, start__gte=since)
    reports = model.drift_reports.filter(created_at__gte=since).select_related("version__model")
    deployments = Deployment.objects.filter(model=model, succeeded=True).select_related("to_version", "from_version")
    return Dashboard(
        model=model,
        span=span if span in SPANS else DEFAULT_SPAN,
        since=since,
        until=timezone.now(),
        buckets=list(buckets.select_related("version__model").order_by("start")),
        reports=list(reports.order_by("created_at")),
        deployments=list(deployments.order_by("-created_at")[:50]),
        shadow=shadow_summary(model, since),
    )
