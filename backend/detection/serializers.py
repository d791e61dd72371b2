"""Request validation and response shapes of the detection API (also what the OpenAPI schema shows)."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from backend.core.fields import CharField, IntegerField, NumberField
from backend.detection.models import Batch, Detection, Feedback
from backend.detection.services.detect import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, MAX_MAX_DET
from backend.serving.serializers import ImageSizeSerializer, ModelRefSerializer


# -- requests ---------------------------------------------------------------------------------------
class DetectionParamsSerializer(serializers.Serializer):
    conf = NumberField(default=DEFAULT_CONF, min_value=0.0, max_value=1.0, help_text="Minimum confidence of a box.")
    iou = NumberField(
        default=DEFAULT_IOU, min_value=0.0, max_value=1.0, help_text="IoU threshold of non-maximum suppression."
    )
    max_det = serializers.IntegerField(
        default=DEFAULT_MAX_DET, min_value=1, max_value=MAX_MAX_DET, help_text="Most boxes returned."
    )
    # Empty counts as left out, as HTML forms send an unset field (a multipart body is a form).
    model = serializers.RegexField(
        r"^[-a-zA-Z0-9_]*\Z",
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="Registered detection model to use; empty or left out: DEFAULT_DETECTION_MODEL.",
    )


class DetectionRequestSerializer(DetectionParamsSerializer):
    image = serializers.FileField(help_text="The image (JPEG, PNG, WebP, BMP, TIFF, GIF...).")


class CompatPredictRequestSerializer(DetectionParamsSerializer):
    file = serializers.FileField(help_text="The image, as clients of the previous system send it.")


class FeedbackRequestSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=Feedback.Verdict.choices)
    box_index = IntegerField(
        required=False, allow_null=True, min_value=0, help_text="The box judged; omit to judge the whole image."
    )
    correct_class = CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="For a wrong box: the right class (name or id). Omit for 'not an object'.",
    )
    min_confidence = NumberField(
        required=False,
        allow_null=True,
        min_value=0.0,
        max_value=1.0,
        help_text="For the whole image: the threshold the boxes were judged at.",
    )
    comment = CharField(required=False, allow_blank=True, max_length=2000)


class BatchRequestSerializer(DetectionParamsSerializer):
    files = serializers.ListField(
        child=serializers.FileField(),
        allow_empty=False,
        help_text="A zip of images, or several image files (repeat the field).",
    )


# -- responses --------------------------------------------------------------------------------------
class BoxSerializer(serializers.Serializer):
    xyxy = serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4, help_text="Pixels.")
    xyxyn = serializers.ListField(
        child=serializers.FloatField(), min_length=4, max_length=4, help_text="Fractions of the image size."
    )
    class_id = serializers.IntegerField()
    class_name = serializers.CharField()
    confidence = serializers.FloatField()


class ParamsSerializer(serializers.Serializer):
    conf = serializers.FloatField()
    iou = serializers.FloatField()
    max_det = serializers.IntegerField()


class FeedbackSerializer(serializers.ModelSerializer):
    trusted = serializers.BooleanField(
        read_only=True,
        help_text="Whether the verdict counts as a training label: given by staff or a trusted reviewer. Others "
        "are kept but left out of the exported labels.",
    )

    class Meta:
        model = Feedback
        fields = [
            "id",
            "box_index",
            "verdict",
            "correct_class_id",
            "correct_class_name",
            "min_confidence",
            "comment",
            "trusted",
            "created_at",
        ]


def model_ref(detection: Detection, context: dict) -> dict:
    """The version that answered: the served one just after a prediction, else the row's (one query)."""
    served = context.get("served_version")
    return served.as_dict() if served is not None else detection.model_version.ref()


def detection_links(detection: Detection) -> dict:
    pk = detection.pk
    return {
        "self": reverse("api-detection-detail", args=[pk]),
        "annotated": reverse("api-detection-annotated", args=[pk]),
        "heatmap": reverse("api-detection-heatmap", args=[pk]),
        "image": reverse("api-detection-image", args=[pk]),
        "thumbnail": reverse("api-detection-thumbnail", args=[pk]),
        "feedback": reverse("api-detection-feedback", args=[pk]),
    }


class DetectionSerializer(serializers.Serializer):
    """What one detection answered; the same shape from POST, GET and the /predict compatibility route."""

    id = serializers.UUIDField()
    model = ModelRefSerializer(help_text="The version that actually answered.")
    boxes = BoxSerializer(many=True)
    image = ImageSizeSerializer()
    latency_ms = serializers.FloatField(help_text="Server time from the request to the answer.")
    inference_ms = serializers.FloatField()
    params = ParamsSerializer()
    filename = serializers.CharField()
    created_at = serializers.DateTimeField()
    image_stored = serializers.BooleanField()
    links = serializers.DictField(child=serializers.CharField())
    feedback = FeedbackSerializer(many=True, required=False)

    def to_representation(self, detection: Detection) -> dict:
        data = {
            "id": str(detection.pk),
            "model": model_ref(detection, self.context),
            "boxes": detection.boxes,
            "image": {"width": detection.width, "height": detection.height},
            "latency_ms": detection.latency_ms,
            "inference_ms": detection.inference_ms,
            "params": {"conf": detection.conf, "iou": detection.iou, "max_det": detection.max_det},
            "filename": detection.filename,
            "created_at": serializers.DateTimeField().to_representation(detection.created_at),
            "image_stored": detection.has_image,
            "links": detection_links(detection),
        }
        if self.context.get("with_feedback"):
            data["feedback"] = FeedbackSerializer(detection.feedback.select_related("user"), many=True).data
        return data


class BatchSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(help_text="processed / total, 0-1.")
    model = serializers.CharField(source="model_name")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = [
            "id",
            "status",
            "progress",
            "total",
            "processed",
            "failed",
            "model",
            "conf",
            "iou",
            "max_det",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]

    def get_links(self, batch: Batch) -> dict[str, str]:
        return {
            "self": reverse("api-batch-detail", args=[batch.pk]),
            "results_json": reverse("api-batch-results-json", args=[batch.pk]),
            "results_csv": reverse("api-batch-results-csv", args=[batch.pk]),
        }
