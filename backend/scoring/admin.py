"""Admin: the prediction log of tabular models (read-only)."""

from django.contrib import admin

from backend.scoring.models import TabularPrediction


@admin.register(TabularPrediction)
class TabularPredictionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "model_version", "label", "confidence", "latency_ms", "source", "user"]
    list_filter = ["source", "label", "model_version__model", "created_at"]
    list_select_related = ["model_version__model", "user"]
    search_fields = ["request_id", "user__username"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "request_id",
        "record_index",
        "model_version",
        "source",
        "inputs",
        "label",
        "class_id",
        "probabilities",
        "confidence",
        "latency_ms",
        "user",
        "session_key",
        "created_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
