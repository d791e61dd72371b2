"""Alerting API (staff): alerts with their filters, acknowledge and resolve; deliveries; rules."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.alerting.models import Alert, AlertRule, Notification, Severity
from backend.alerting.serializers import AlertRuleSerializer, AlertSerializer, NotificationSerializer
from backend.alerting.services import evaluation
from backend.core.serializers import ErrorResponseSerializer

OPEN = "open"


def _choice(params, name: str, choices: list[str]) -> str | None:
    value = params.get(name)
    if value is not None and value not in choices:
        raise serializers.ValidationError({name: [f"One of {', '.join(choices)}."]})
    return value


def _number(params, name: str) -> int | None:
    value = params.get(name)
    if value is not None and not value.isdecimal():
        raise serializers.ValidationError({name: ["Must be a whole number."]})
    return None if value is None else int(value)


class AlertList(generics.ListAPIView):
    """Alerts, newest first."""

    permission_classes = [IsAdminUser]
    serializer_class = AlertSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, enum=[OPEN, *Alert.State.values], description="open: any "
                             "of pending, firing, acknowledged"),
            OpenApiParameter("model", OpenApiTypes.STR, description="Registered model name."),
            OpenApiParameter("severity", OpenApiTypes.STR, enum=Severity.values),
            OpenApiParameter("rule", OpenApiTypes.STR, description="Rule name."),
        ]
    )  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        alerts = Alert.objects.select_related("rule", "acknowledged_by", "resolved_by")
        state = _choice(params, "state", [OPEN, *Alert.State.values])
        if state == OPEN:
            alerts = alerts.open()
        elif state:
            alerts = alerts.filter(state=state)
        if params.get("model"):
            alerts = alerts.filter(scope=params["model"])
        if severity := _choice(params, "severity", Severity.values):
            alerts = alerts.filter(severity=severity)
        if params.get("rule"):
            alerts = alerts.filter(rule__name=params["rule"])
        return alerts


class AlertDetail(generics.RetrieveAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = AlertSerializer
    queryset = Alert.objects.select_related("rule", "acknowledged_by", "resolved_by")


class _AlertAction(APIView):
    permission_classes = [IsAdminUser]
    serializer_class = AlertSerializer

    def act(self, alert: Alert, user) -> Alert:
        raise NotImplementedError

    @extend_schema(request=None, responses={200: AlertSerializer, 404: ErrorResponseSerializer,
                                            409: ErrorResponseSerializer})  # fmt: skip
    def post(self, request, pk: int):
        alert = generics.get_object_or_404(Alert, pk=pk)
        return Response(AlertSerializer(self.act(alert, request.user)).data)


class AlertAcknowledge(_AlertAction):
    """Mark a firing alert as seen: it stays open and still resolves by itself."""

    def act(self, alert, user):
        return evaluation.acknowledge_alert(alert, user=user)


class AlertResolve(_AlertAction):
    """Close an open alert by hand (the channels hear it)."""

    def act(self, alert, user):
        return evaluation.resolve_alert(alert, user=user)


class NotificationList(generics.ListAPIView):
    """Deliveries, newest first: what went to which channel, how many tries, what it answered."""

    permission_classes = [IsAdminUser]
    serializer_class = NotificationSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=Notification.Status.values),
            OpenApiParameter("channel", OpenApiTypes.STR, description="Channel name."),
            OpenApiParameter("alert", {"type": "integer", "minimum": 0}, description="Alert id."),
            OpenApiParameter("event", OpenApiTypes.STR, description="alert.firing, version.promoted..."),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        rows = Notification.objects.select_related("channel")
        if status := _choice(params, "status", Notification.Status.values):
            rows = rows.filter(status=status)
        if params.get("channel"):
            rows = rows.filter(channel__name=params["channel"])
        if (alert := _number(params, "alert")) is not None:
            rows = rows.filter(alert_id=alert)
        if params.get("event"):
            rows = rows.filter(event=params["event"])
        return rows


class AlertRuleList(generics.ListAPIView):
    """The alert rules (edited in the admin)."""

    permission_classes = [IsAdminUser]
    serializer_class = AlertRuleSerializer
    queryset = AlertRule.objects.select_related("model").prefetch_related("channels")
