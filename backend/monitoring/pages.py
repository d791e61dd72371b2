"""Monitoring pages (staff): every model's health at a glance, one model's dashboard, a drift report;
and the shadow-mode panel of the registry's promotion confirmation page (backend.core.panels)."""

from __future__ import annotations

from collections import defaultdict

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from backend.core.panels import Panel, panels
from backend.monitoring import charts
from backend.monitoring.models import DriftReport
from backend.monitoring.services import dashboard as boards
from backend.monitoring.services.shadow import shadow_summary
from backend.registry.models import Deployment, RegisteredModel
from mlops.exceptions import ModelNotFound


@staff_member_required
def model_list(request):
    context = {"rows": boards.model_health(), "panels": panels(), "title": "Monitoring", "nav": "monitoring"}
    return render(request, "monitoring/model_list.html", context)


@staff_member_required
def model_dashboard(request, name: str):
    try:
        model = RegisteredModel.objects.named(name)
    except ModelNotFound as exc:
        return render(request, "monitoring/missing.html", {"message": exc.message, "nav": "monitoring"}, status=404)
    board = boards.dashboard(model, request.GET.get("span", boards.DEFAULT_SPAN))
    context = {
        "board": board,
        "charts": _charts(board),
        "spans": list(boards.SPANS),
        "shadow": {"summary": board.shadow},
        "panels": panels(model=model),
        "title": f"{model.name} · monitoring",
        "nav": "monitoring",
    }
    return render(request, "monitoring/dashboard.html", context)


def _charts(board: boards.Dashboard) -> dict:
    markers = [
        charts.Marker(
            d.created_at,
            f"{d.get_action_display()} to {d.to_version.semantic_label}",
            "#dc2626" if d.action != Deployment.Action.PROMOTE else "#16a34a",
        )
        for d in board.deployments
    ]
    common = {"markers": markers, "period": (board.since, board.until)}
    per_version = defaultdict(list)
    for bucket in board.buckets:
        per_version[bucket.version.semantic_label].append(bucket)

    def lines(value) -> list[charts.Series]:
        return [charts.Series(label, [(b.start, value(b)) for b in rows]) for label, rows in per_version.items()]

    return {
        "requests": charts.line_chart("Predictions", lines(lambda b: b.predictions), unit="count", **common),
        "latency": charts.line_chart(
            "Latency",
            [
                charts.Series(name, [(b.start, getattr(b, field)) for b in board.buckets])
                for name, field in (("p50", "latency_p50_ms"), ("p95", "latency_p95_ms"), ("p99", "latency_p99_ms"))
            ],
            unit="ms",
            **common,
        ),
        "errors": charts.line_chart("Error rate", lines(lambda b: b.error_rate), unit="share", **common),
        "drift": charts.line_chart(
            "Drifted share of columns",
            [charts.Series("drift share", [(r.created_at, r.drifted_share) for r in board.reports])],
            unit="share",
            y_max=1.0,
            **common,
        ),
        "classes": charts.bar_chart("Class mix", board.class_mix, unit="predictions"),
        "confidence": charts.bar_chart("Confidence", board.confidence_histogram, unit="predictions"),
    }


@staff_member_required
def drift_report(request, pk: int):
    report = get_object_or_404(DriftReport.objects.select_related("model", "version__model"), pk=pk)
    context = {
        "report": report,
        "html_url": reverse("api-drift-report-html", args=[report.pk]) if report.html else "",
        "title": f"Drift report #{report.pk}",
        "nav": "monitoring",
    }
    return render(request, "monitoring/drift_report.html", context)


def shadow_promotion_panel(*, model, version, **context) -> Panel:
    """How the candidate answered in shadow of the current production version (the promotion page)."""
    current = model.production_version
    summary = shadow_summary(model, shadow_version=version, production_version=current)
    return Panel("monitoring/_shadow.html", {"summary": summary, "candidate": version, "model": model})
