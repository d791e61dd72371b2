"""Admin: the prediction log of classifiers (read-only), its feedback and its batches."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from backend.classification.models import Classification, ClassificationBatch, ClassificationFeedback
from backend.serving.admin import BatchAdmin, ReadOnlyAdmin


class FeedbackInline(admin.TabularInline):
    model = ClassificationFeedback
    extra = 0
    can_delete = False
    fields = ["created_at", "verdict", "correct_class", "user", "comment"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Classification)
class ClassificationAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "preview",
        "model_version",
        "class_name",
        "confidence",
        "latency_ms",
        "source",
        "user",
        "image_kept",
    ]
    list_filter = ["source", "model_version__model", "class_name", "created_at"]
    list_select_related = ["model_version__model", "user"]
    search_fields = ["id", "filename", "user__username"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "model_version",
        "source",
        "filename",
        "image",
        "thumbnail",
        "image_deleted_at",
        "width",
        "height",
        "class_name",
        "confidence",
        "top_k",
        "classes",
        "probabilities",
        "features",
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
        return format_html('<img src="{}" style="height:48px">', reverse("api-classification-thumbnail", args=[obj.pk]))

    @admin.display(boolean=True, description="image kept")
    def image_kept(self, obj) -> bool:
        return obj.has_image


@admin.register(ClassificationFeedback)
class ClassificationFeedbackAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "classification", "verdict", "correct_class", "user", "is_trusted"]
    list_filter = ["verdict", "classification__model_version__model"]
    list_select_related = ["classification", "user"]
    search_fields = ["classification__id", "comment"]
    readonly_fields = ["classification", "verdict", "correct_class", "comment", "user", "session_key", "created_at"]

    @admin.display(boolean=True, description="trusted")
    def is_trusted(self, obj) -> bool:
        return obj.trusted


@admin.register(ClassificationBatch)
class ClassificationBatchAdmin(BatchAdmin):
    params = ["top_k"]
