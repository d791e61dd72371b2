"""Request validation and response shapes of the classification API (also what the OpenAPI schema shows)."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from backend.classification.models import Classification, ClassificationBatch, ClassificationFeedback
from backend.core.fields import CharField
from backend.serving.serializers import ImageSizeSerializer, ModelRefSerializer

# The schema's bound on top_k; the model's own number of classes is checked once it is known (400).
MAX_TOP_K = 1000


# -- requests ---------------------------------------------------------------------------------------
class ClassificationParamsSerializer(serializers.Serializer):
    # Empty counts as left out, as HTML forms send an unset field (a multipart body is a form).
    model = serializers.RegexField(
        r"^[-a-zA-Z0-9_]*\Z",
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="Registered classification model to use; empty or left out: DEFAULT_CLASSIFICATION_MODEL.",
    )
    top_k = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_TOP_K,
        help_text="How many of the best classes to list, 1 to the model's number of classes (more: 400 "
        "invalid_parameter). Left out: 5, or every class when the model has fewer.",
    )


class ClassificationRequestSerializer(ClassificationParamsSerializer):
    image = serializers.FileField(help_text="The image (JPEG, PNG, WebP, BMP, TIFF, GIF...).")


class CompatClassifyRequestSerializer(ClassificationParamsSerializer):
    file = serializers.FileField(help_text="The image, as clients of the previous system send it.")


class ClassificationBatchRequestSerializer(ClassificationParamsSerializer):
    files = serializers.ListField(
        child=serializers.FileField(),
        allow_empty=False,
        help_text="A zip of images, or several image files (repeat the field).",
    )


class ClassificationFeedbackRequestSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(
        choices=ClassificationFeedback.Verdict.choices, help_text="Whether the best class was right."
    )
    correct_class = CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="With verdict 'wrong': the class the image really shows, by name (one of the model's classes).",
    )
    comment = CharField(required=False, allow_blank=True, max_length=2000)


# -- responses --------------------------------------------------------------------------------------
class ClassScoreSerializer(serializers.Serializer):
    class_id = serializers.IntegerField()
    class_name = serializers.CharField()
    probability = serializers.FloatField(min_value=0.0, max_value=1.0)


class ClassificationFeedbackSerializer(serializers.ModelSerializer):
    trusted = serializers.BooleanField(
        read_only=True,
        help_text="Whether the verdict counts as a training label: given by staff or a trusted reviewer. Others "
        "are kept but not taken as labels.",
    )

    class Meta:
        model = ClassificationFeedback
        fields = ["id", "verdict", "correct_class", "comment", "trusted", "created_at"]


def classification_links(classification: Classification) -> dict:
    pk = classification.pk
    return {
        "self": reverse("api-classification-detail", args=[pk]),
        "thumbnail": reverse("api-classification-thumbnail", args=[pk]),
        "feedback": reverse("api-classification-feedback", args=[pk]),
    }


class ClassificationSerializer(serializers.Serializer):
    """What one classification answered; the same shape from POST and GET."""

    id = serializers.UUIDField()
    model = ModelRefSerializer(help_text="The version that actually answered.")
    classes = ClassScoreSerializer(many=True, help_text="The top_k best classes, best first.")
    top_k = serializers.IntegerField()
    image = ImageSizeSerializer()
    latency_ms = serializers.FloatField(help_text="Server time from the request to the answer.")
    inference_ms = serializers.FloatField()
    filename = serializers.CharField()
    created_at = serializers.DateTimeField()
    image_stored = serializers.BooleanField()
    links = serializers.DictField(child=serializers.CharField())
    feedback = ClassificationFeedbackSerializer(many=True, required=False, help_text="On GET of one classification.")

    def to_representation(self, classification: Classification) -> dict:
        served = self.context.get("served_version")
        data = {
            "id": str(classification.pk),
            "model": served.as_dict() if served is not None else classification.model_version.ref(),
            "classes": classification.classes,
            "top_k": classification.top_k,
            "image": {"width": classification.width, "height": classification.height},
            "latency_ms": classification.latency_ms,
            "inference_ms": classification.inference_ms,
            "filename": classification.filename,
            "created_at": serializers.DateTimeField().to_representation(classification.created_at),
            "image_stored": classification.has_image,
            "links": classification_links(classification),
        }
        if self.context.get("with_feedback"):
            data["feedback"] = ClassificationFeedbackSerializer(
                classification.feedback.select_related("user"), many=True
            ).data
        return data


class CompatClassificationSerializer(ClassificationSerializer):
    """POST /predict of a classifier: the previous system's two fields first, then the full answer."""

    prediction = serializers.CharField(help_text="The best class (the previous system's label).")
    confidence = serializers.FloatField(min_value=0.0, max_value=1.0, help_text="The best class's probability.")

    def to_representation(self, classification: Classification) -> dict:
        best = {"prediction": classification.class_name, "confidence": classification.confidence}
        return {**best, **super().to_representation(classification)}


class ClassificationBatchSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(help_text="processed / total, 0-1.")
    model = serializers.CharField(source="model_name")
    links = serializers.SerializerMethodField()

    class Meta:
        model = ClassificationBatch
        fields = [
            "id",
            "status",
            "progress",
            "total",
            "processed",
            "failed",
            "model",
            "top_k",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]

    def get_links(self, batch: ClassificationBatch) -> dict[str, str]:
        return {
            "self": reverse("api-classification-batch-detail", args=[batch.pk]),
            "results_json": reverse("api-classification-batch-results-json", args=[batch.pk]),
            "results_csv": reverse("api-classification-batch-results-csv", args=[batch.pk]),
        }
