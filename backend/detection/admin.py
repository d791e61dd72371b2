"""Admin: the prediction log of detectors (read-only), feedback and batches."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from backend.detection.models import Batch, Detection, Feedback
from backend.serving.admin import BatchAdmin, ReadOnlyAdmin


class FeedbackInline(admin.TabularInline):
    model = Feedback
    extra = 0
    can_delete = False
    fields = ["created_at", "box_index", "verdict", "correct_class_name", "min_confidence", "user", "comment"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Detection)
class DetectionAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "preview",
        "model_version",
        "box_count",
        "max_confidence",
        "latency_ms",
        "source",
        "user",
        "image_kept",
    ]
    list_filter = ["source", "model_version__model", "created_at"]
    list_select_related = ["model_version__model", "user"]
    search_fields = ["id", "filename", "user__username"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "annotated_preview",
        "model_version",
        "source",
        "batch",
        "filename",
        "image",
        "thumbnail",
        "image_deleted_at",
        "width",
        "height",
        "box_count",
        "max_confidence",
        "boxes",
        "features",
        "conf",
        "iou",
        "max_det",
        "latency_ms",
        "inference_ms",
        "user",
        "session_key",
        "created_at",
    ]
    fields = readonly_fields
    inlines = [FeedbackInline]

    @admin.display(description="image")
    def preview(self, obj) -> str:
        if not obj.has_image:
            return "-"
        return format_html('<img src="{}" style="height:48px">', reverse("api-detection-thumbnail", args=[obj.pk]))

    @admin.display(description="boxes drawn")
    def annotated_preview(self, obj) -> str:
        if not obj.has_image:
            return "image deleted by retention"
        return format_html('<img src="{}" style="max-width:640px">', reverse("api-detection-annotated", args=[obj.pk]))

    @admin.display(boolean=True, description="image kept")
    def image_kept(self, obj) -> bool:
        return obj.has_image


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "detection", "box_index", "verdict", "correct_class_name", "user"]
    list_filter = ["verdict", "detection__model_version__model"]
    list_select_related = ["detection", "user"]
    search_fields = ["detection__id", "comment"]
    readonly_fields = [
        "detection",
        "box_index",
        "verdict",
        "correct_class_id",
        "correct_class_name",
        "min_confidence",
        "comment",
        "user",
        "session_key",
        "created_at",
    ]


@admin.register(Batch)
class DetectionBatchAdmin(BatchAdmin):
    params = ["conf", "iou", "max_det"]
