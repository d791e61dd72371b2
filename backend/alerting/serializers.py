"""Response shapes of the alerting API (also what the OpenAPI schema shows)."""

from rest_framework import serializers

from backend.alerting.models import Alert, AlertRule, Notification


class AlertRuleSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", allow_null=True, default=None)
    channels = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = AlertRule
        fields = [
            "id", "name", "kind", "description", "comparison", "threshold", "window_minutes", "for_minutes",
            "cooldown_minutes", "min_samples", "severity", "model", "channels", "enabled", "builtin",
        ]  # fmt: skip


class AlertSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule.name")
    kind = serializers.CharField(source="rule.kind")
    model = serializers.CharField(source="scope", help_text="The model's name; empty for the installation.")
    acknowledged_by = serializers.StringRelatedField()
    resolved_by = serializers.StringRelatedField(help_text="Null on a resolved alert: it resolved by itself.")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id", "rule", "kind", "model", "state", "severity", "value", "threshold", "summary", "evidence",
            "started_at", "fired_at", "last_seen_at", "reopened", "acknowledged_at", "acknowledged_by",
            "resolved_at", "resolved_by", "links",
        ]  # fmt: skip

    def get_links(self, alert: Alert) -> dict:
        links = {"page": f"/alerts/{alert.pk}/", "notifications": f"/api/v1/notifications/?alert={alert.pk}"}
        if alert.evidence.get("url"):
            links["evidence"] = alert.evidence["url"]
        if alert.evidence.get("drift_report"):
            links["drift_report"] = f"/api/v1/drift-reports/{alert.evidence['drift_report']}/"
        return links


class NotificationSerializer(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel.name")
    channel_kind = serializers.CharField(source="channel.kind")

    class Meta:
        model = Notification
        fields = [
            "id", "alert", "channel", "channel_kind", "event", "title", "status", "attempts", "max_attempts",
            "next_attempt_at", "sent_at", "http_status", "error", "detail", "created_at",
        ]  # fmt: skip
