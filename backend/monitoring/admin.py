"""Admin: drift and shadow settings per model, the drift reports (read-only) with their HTML report, and
the shadow comparisons (read-only)."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms import ModelForm
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from backend.monitoring.models import (
    DriftReport,
    DriftSettings,
    PerformanceBucket,
    ShadowComparison,
    ShadowSettings,
)
from backend.monitoring.tasks import check_drift
from mlops.exceptions import InvalidInput


class DriftSettingsForm(ModelForm):
    class Meta:
        model = DriftSettings
        fields = [
            "model",
            "enabled",
            "window_predictions",
            "window_hours",
            "min_samples",
            "reference_predictions",
            "method",
            "threshold",
            "column_methods",
            "column_thresholds",
            "drift_share",
            "max_rows",
        ]

    def clean(self):
        data = super().clean()
        try:
            DriftSettings(**{k: v for k, v in data.items() if k != "id"}).config()
        except InvalidInput as exc:
            raise ValidationError(exc.message) from exc
        return data


@admin.register(DriftSettings)
class DriftSettingsAdmin(admin.ModelAdmin):
    form = DriftSettingsForm
    list_display = ["model", "enabled", "window_predictions", "window_hours", "min_samples", "drift_share"]
    list_select_related = ["model"]
    actions = ["check_now"]

    @admin.action(description="Check drift now")
    def check_now(self, request, queryset):
        for settings in queryset.select_related("model"):
            check_drift.delay(model_name=settings.model.name)
        self.message_user(request, f"{queryset.count()} drift check(s) queued.", messages.SUCCESS)


@admin.register(DriftReport)
class DriftReportAdmin(admin.ModelAdmin):
    list_display = ["created_at", "model", "version", "status", "drifted_share", "current_size", "html_link"]
    list_filter = ["status", "model", "trigger", "created_at"]
    list_select_related = ["model", "version__model"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "model",
        "version",
        "status",
        "trigger",
        "message",
        "window",
        "window_start",
        "window_end",
        "reference_source",
        "reference_size",
        "current_size",
        "drifted_share",
        "dataset_drift",
        "column_table",
        "settings",
        "duration_ms",
        "created_at",
        "html_link",
    ]
    exclude = ["columns", "html"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Evidently report")
    def html_link(self, report: DriftReport):
        if not report.html:
            return "-"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">open</a>', reverse("api-drift-report-html", args=[report.pk])
        )

    @admin.display(description="columns")
    def column_table(self, report: DriftReport):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{:.4g}</td><td>{:.4g}</td><td>{}</td></tr>",
            (
                (c["column"], c["method"], c["score"], c["threshold"], "drift" if c["drifted"] else "ok")
                for c in report.columns
            ),
        )
        return format_html(
            "<table><tr><th>column</th><th>method</th><th>score</th><th>threshold</th><th></th></tr>{}</table>", rows
        )


@admin.register(PerformanceBucket)
class PerformanceBucketAdmin(admin.ModelAdmin):
    list_display = ["start", "seconds", "version", "requests", "errors", "latency_p50_ms", "latency_p95_ms", "accuracy"]
    list_filter = ["seconds", "model", "start"]
    list_select_related = ["version__model"]
    date_hierarchy = "start"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ShadowSettings)
class ShadowSettingsAdmin(admin.ModelAdmin):
    list_display = ["model", "enabled", "sample_rate"]
    list_editable = ["enabled", "sample_rate"]
    list_select_related = ["model"]


@admin.register(ShadowComparison)
class ShadowComparisonAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "model", "production_version", "shadow_version", "agreement", "compared", "matched",
        "mean_delta", "shadow_ms",
    ]  # fmt: skip
    list_filter = ["model", "created_at"]
    list_select_related = ["model", "production_version__model", "shadow_version__model"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
