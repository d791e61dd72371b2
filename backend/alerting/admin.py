"""Admin: rules, alerts (acknowledge, resolve), silences, channels (send a test), the delivery history."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms import ModelForm
from django.utils.html import format_html

from backend.alerting.models import (
    Alert,
    AlertRule,
    Channel,
    DeploymentWatch,
    Notification,
    RollbackPolicy,
    Silence,
    TrainingPolicy,
)
from backend.alerting.services import evaluation, outbox
from backend.alerting.tasks import evaluate_rules
from backend.registry.services import may_promote
from mlops.alerting.channels import channel_class
from mlops.exceptions import InvalidInput


class AlertRuleForm(ModelForm):
    class Meta:
        model = AlertRule
        fields = [
            "name", "description", "kind", "comparison", "threshold", "window_minutes", "for_minutes",
            "cooldown_minutes", "min_samples", "severity", "model", "channels", "enabled",
        ]  # fmt: skip

    def clean(self):
        data = super().clean()
        if data.get("kind") and not AlertRule(kind=data["kind"]).per_model and data.get("model"):
            raise ValidationError("This kind of rule watches the installation, not a model: leave the model blank.")
        return data


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = [
        "name", "kind", "comparison", "threshold", "window_minutes", "for_minutes", "cooldown_minutes", "severity",
        "model", "enabled", "builtin",
    ]  # fmt: skip
    list_filter = ["kind", "severity", "enabled", "builtin"]
    list_editable = ["enabled"]
    filter_horizontal = ["channels"]
    actions = ["evaluate_now"]

    @admin.action(description="Evaluate now")
    def evaluate_now(self, request, queryset):
        evaluate_rules.delay(kinds=sorted(set(queryset.values_list("kind", flat=True))))
        self.message_user(request, "Evaluation queued.", messages.SUCCESS)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["started_at", "rule", "scope", "state", "severity", "value", "threshold", "fired_at", "resolved_at"]
    list_filter = ["state", "severity", "rule", "model"]
    list_select_related = ["rule"]
    date_hierarchy = "started_at"
    search_fields = ["summary", "scope"]
    readonly_fields = [field.name for field in Alert._meta.fields] + ["page"]
    actions = ["acknowledge", "resolve"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="alert page")
    def page(self, alert: Alert):
        return format_html('<a href="/alerts/{}/">open</a>', alert.pk)

    @admin.action(description="Acknowledge")
    def acknowledge(self, request, queryset):
        self._each(request, queryset, lambda alert: evaluation.acknowledge_alert(alert, user=request.user))

    @admin.action(description="Resolve")
    def resolve(self, request, queryset):
        self._each(request, queryset, lambda alert: evaluation.resolve_alert(alert, user=request.user))

    def _each(self, request, queryset, act) -> None:
        done = 0
        for alert in queryset:
            try:
                act(alert)
                done += 1
            except evaluation.AlertConflict as exc:
                self.message_user(request, str(exc), messages.WARNING)
        self.message_user(request, f"{done} alert(s) changed.", messages.SUCCESS)


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ["__str__", "rule", "model", "ends_at", "created_by", "reason"]
    list_filter = ["rule", "model"]
    exclude = ["created_by"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


class ChannelForm(ModelForm):
    class Meta:
        model = Channel
        fields = ["name", "kind", "enabled", "config", "secret", "alerts", "min_severity", "events"]

    def clean(self):
        data = super().clean()
        if data.get("kind"):
            try:
                data["config"] = channel_class(data["kind"]).validate(data.get("config") or {})
            except InvalidInput as exc:
                raise ValidationError({"config": exc.message}) from exc
        events = data.get("events") or []
        unknown = [event for event in events if event not in Channel.Event.values]
        if not isinstance(events, list) or unknown:
            raise ValidationError(
                {"events": f"Unknown events {unknown}; choose from {', '.join(Channel.Event.values)}."}
            )
        return data


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "enabled", "alerts", "min_severity", "events", "last_delivery"]
    list_filter = ["kind", "enabled"]
    actions = ["send_test_notification"]

    @admin.display(description="last delivery")
    def last_delivery(self, channel: Channel):
        last = channel.notifications.order_by("-created_at").first()
        return f"{last.status} {last.created_at:%Y-%m-%d %H:%M}" if last else "-"

    @admin.action(description="Send a test notification")
    def send_test_notification(self, request, queryset):
        for channel in queryset:
            outbox.send_test(channel)
        self.message_user(request, f"{queryset.count()} test notification(s) queued; see Notifications.")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "event", "channel", "status", "attempts", "http_status", "sent_at", "short_error"]
    list_filter = ["status", "event", "channel"]
    list_select_related = ["channel"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Notification._meta.fields]
    actions = ["retry_now"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="error")
    def short_error(self, notification: Notification):
        return notification.error[:120]

    @admin.action(description="Retry now")
    def retry_now(self, request, queryset):
        count = outbox.retry_now(queryset.exclude(status=Notification.Status.SENT).values_list("pk", flat=True))
        self.message_user(request, f"{count} notification(s) queued again.")


@admin.register(RollbackPolicy)
class RollbackPolicyAdmin(admin.ModelAdmin):
    list_display = ["__str__", "enabled", "watch_minutes", "judge_minutes", "min_requests", "error_rate_margin",
                    "latency_ratio"]  # fmt: skip
    list_editable = ["enabled"]

    # A policy decides when the system rolls production back by itself: changing one is changing what
    # serves, so it needs the registry's promote permission on top of the model permission. Viewing does not.
    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and may_promote(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and may_promote(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and may_promote(request.user)


@admin.register(DeploymentWatch)
class DeploymentWatchAdmin(admin.ModelAdmin):
    list_display = ["started_at", "model", "deployment", "state", "checks", "last_checked_at", "reason"]
    list_filter = ["state", "model"]
    readonly_fields = [field.name for field in DeploymentWatch._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


class TrainingPolicyForm(ModelForm):
    """A policy that promotes by itself puts versions into production as the system: only someone who may
    promote (the registry's permission) saves one. `requester` is set by the admin for each request."""

    requester = None

    class Meta:
        model = TrainingPolicy
        fields = [
            "model", "enabled", "on_drift", "feedback_samples", "every_hours", "on_performance_drop", "dataset",
            "params", "auto_promote", "promote_margin", "quiet_hours",
        ]  # fmt: skip

    def clean(self):
        data = super().clean()
        auto_promote = data.get("auto_promote", self.instance.auto_promote)
        if auto_promote and not may_promote(self.requester):
            message = (
                "A policy that promotes its versions by itself needs the registry's promote permission; "
                "turn auto-promote off and its versions are staged for review."
            )
            self.add_error("auto_promote" if "auto_promote" in self.fields else None, message)
        return data


@admin.register(TrainingPolicy)
class TrainingPolicyAdmin(admin.ModelAdmin):
    form = TrainingPolicyForm
    list_display = ["model", "enabled", "on_drift", "feedback_samples", "every_hours", "on_performance_drop",
                    "auto_promote", "promote_margin", "last_triggered_at", "last_outcome"]  # fmt: skip
    list_editable = ["enabled"]
    readonly_fields = ["last_triggered_at", "last_job", "last_outcome"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.requester = request.user  # modelform_factory made this class for this request alone
        return form

    def get_changelist_form(self, request, **kwargs):
        form = super().get_changelist_form(request, **kwargs)
        form.requester = request.user
        return form
