"""Alerting pages (staff): the alerts, one alert with its evidence and deliveries, and the panel
the monitoring pages show (open alerts and the latest history)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from backend.alerting.models import Alert
from backend.alerting.services import evaluation
from backend.core.panels import Panel
from mlops.exceptions import MlopsError

HISTORY = 20


@staff_member_required
def alert_list(request):
    state = request.GET.get("state", "open")
    alerts = Alert.objects.select_related("rule")
    alerts = alerts.open() if state == "open" else alerts
    context = {"alerts": alerts[:200], "state": state, "title": "Alerts", "nav": "alerts"}
    return render(request, "alerting/alert_list.html", context)


@staff_member_required
def alert_detail(request, pk: int):
    alert = get_object_or_404(Alert.objects.select_related("rule", "model", "acknowledged_by", "resolved_by"), pk=pk)
    context = {
        "alert": alert,
        "notifications": alert.notifications.select_related("channel")[:50],
        "title": f"Alert #{alert.pk}: {alert.rule.name}",
        "nav": "alerts",
    }
    return render(request, "alerting/alert_detail.html", context)


@staff_member_required
@require_POST
def alert_action(request, pk: int, action: str):
    alert = get_object_or_404(Alert, pk=pk)
    act = {"acknowledge": evaluation.acknowledge_alert, "resolve": evaluation.resolve_alert}.get(action)
    if act is None:
        return redirect("alerting:detail", pk=pk)
    try:
        act(alert, user=request.user)
        messages.success(request, f"Alert #{pk}: {action}d.")
    except MlopsError as exc:
        messages.warning(request, exc.message)
    return redirect("alerting:detail", pk=pk)


def alerts_panel(*, model=None) -> Panel:
    """Open alerts and the latest closed ones, of one model or of everything."""
    alerts = Alert.objects.select_related("rule")
    if model is not None:
        alerts = alerts.filter(model=model)
    return Panel(
        "alerting/panel.html",
        {"open": list(alerts.open()[:HISTORY]), "history": list(alerts.filter(state=Alert.State.RESOLVED)[:HISTORY])},
    )
