"""What the admins of the prediction logs share: read-only rows, and the batch pages."""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Prediction logs are evidence: viewable and deletable, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


BATCH_FIELDS = ["id", "model_name", "status", "total", "processed", "failed"]
BATCH_TRAIL = ["errors", "error", "task_id", "user", "session_key", "created_at", "started_at", "finished_at"]


class BatchAdmin(ReadOnlyAdmin):
    """A batch of uploads; `params` names the kind's own prediction parameters, shown after the counts."""

    params: list[str] = []
    list_display = ["created_at", "id", "model_name", "status", "processed", "total", "failed", "user"]
    list_filter = ["status", "model_name"]
    search_fields = ["id", "user__username"]
    exclude = ["inputs", "input_dir"]

    def get_readonly_fields(self, request, obj=None):
        return [*BATCH_FIELDS, *self.params, *BATCH_TRAIL]
