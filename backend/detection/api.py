"""Detection REST API: upload an image, read it back with boxes drawn or as a heatmap, give feedback, batches.

Access (backend.serving.permissions, backend.serving.throttling): predictions are open to
anonymous callers, throttled at API_ANON_RATE; listing past detections needs a login (users see
their own, staff see all); a single detection or batch is reachable by whoever holds its id, a
random UUID returned only to the caller who created it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.responses import after_response
from backend.core.serializers import ErrorResponseSerializer
from backend.detection.models import Batch, Detection
from backend.detection.serializers import (
    BatchRequestSerializer,
    BatchSerializer,
    CompatPredictRequestSerializer,
    DetectionRequestSerializer,
    DetectionSerializer,
    FeedbackRequestSerializer,
    FeedbackSerializer,
)
from backend.detection.services import batches, detect, feedback, pictures
from backend.serving import batches as serving_batches
from backend.serving.api import CsvRenderer, PictureView, TimedView, UploadListCreate
from backend.serving.services import Requester
from backend.serving.sources import Source
from backend.serving.throttling import PredictionThrottle
from backend.serving.uploads import check_upload_size

ERRORS = {
    400: OpenApiResponse(ErrorResponseSerializer, description="Invalid input; the body names the field."),
    404: OpenApiResponse(ErrorResponseSerializer, description="No such detection, batch or model."),
}
PREDICTION_ERRORS = {
    **ERRORS,
    413: OpenApiResponse(ErrorResponseSerializer, description="File or image too large (image_too_large...)."),
    429: OpenApiResponse(ErrorResponseSerializer, description="Anonymous rate limit (API_ANON_RATE) reached."),
    503: OpenApiResponse(ErrorResponseSerializer, description="No version in production, or it cannot load."),
}
MIN_CONFIDENCE = OpenApiParameter(
    "min_confidence",
    {"type": "number", "minimum": 0, "maximum": 1},
    description="Draw only boxes at or above this confidence (default 0).",
)


def _min_confidence(request) -> float:
    raw = request.query_params.get("min_confidence", "0")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise serializers.ValidationError({"min_confidence": ["Must be a number between 0 and 1."]})
    return value


def _params(data: dict) -> detect.DetectionParams:
    return detect.DetectionParams(conf=data["conf"], iou=data["iou"], max_det=data["max_det"])


def _detect_from(view: TimedView, serializer_class, file_field: str, *, source: str) -> detect.DetectionResult:
    serializer = serializer_class(data=view.request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    view.prediction_model = data.get("model") or settings.DEFAULT_DETECTION_MODEL
    upload = data[file_field]
    check_upload_size(upload.size)
    return detect.detect_image(
        upload.read(),
        filename=upload.name or "",
        model_name=view.prediction_model,
        params=_params(data),
        requester=Requester.from_request(view.request),
        source=source,
        started=view.started,
        defer_features=True,
    )


def _answer(result: detect.DetectionResult, status_code: int) -> Response:
    """The saved detection's JSON; its image descriptors computed right after the answer went out."""
    body = DetectionSerializer(result.detection, context={"served_version": result.version}).data
    response = Response(body, status=status_code)
    return after_response(response, result.finish, what=f"detection features {result.detection.pk}")


class DetectionListCreate(UploadListCreate):
    """POST an image to detect objects in it (open to anyone); GET your past detections (signed in)."""

    prediction_kind = "detection"

    @extend_schema(
        operation_id="detections_create",
        request={"multipart/form-data": DetectionRequestSerializer},
        responses={201: DetectionSerializer, **PREDICTION_ERRORS},
        description="Detect objects with the production version of the detector. The answer names the "
        "version that actually answered. Open to anonymous callers (throttled at API_ANON_RATE).",
    )
    def post(self, request):
        source = Source.WEB if request.headers.get("X-Modelyard-Client") == "web" else Source.API
        result = _detect_from(self, DetectionRequestSerializer, "image", source=source)
        return _answer(result, status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="detections_list",
        responses={200: DetectionSerializer(many=True)},
        description="Your detections, newest first (staff see everyone's). Needs a signed-in user.",
    )
    def get(self, request):
        return self.own_page(Detection.objects.select_related("model_version__model"), DetectionSerializer)


def _detection(pk) -> Detection:
    return get_object_or_404(Detection.objects.select_related("model_version__model"), pk=pk)


class DetectionDetail(APIView):
    """One detection with its feedback; reachable by whoever holds its id."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: DetectionSerializer, 404: ERRORS[404]})
    def get(self, request, pk):
        detection = _detection(pk)
        return Response(DetectionSerializer(detection, context={"with_feedback": True}).data)


class DetectionAnnotated(PictureView):
    @extend_schema(
        parameters=[MIN_CONFIDENCE],
        responses={(200, "image/png"): OpenApiTypes.BINARY, 404: ERRORS[404], 410: ErrorResponseSerializer},
        description="The image with its boxes drawn (410 once retention deleted the image).",
    )
    def get(self, request, pk):
        png = pictures.annotated_png(_detection(pk), _min_confidence(request))
        return HttpResponse(png, content_type="image/png")


class DetectionHeatmap(PictureView):
    @extend_schema(
        parameters=[MIN_CONFIDENCE],
        responses={(200, "image/png"): OpenApiTypes.BINARY, 404: ERRORS[404], 410: ErrorResponseSerializer},
        description="Detection confidence density drawn over the image.",
    )
    def get(self, request, pk):
        png = pictures.heatmap_png(_detection(pk), _min_confidence(request))
        return HttpResponse(png, content_type="image/png")


class DetectionImage(PictureView):
    @extend_schema(
        responses={(200, "image/jpeg"): OpenApiTypes.BINARY, 404: ERRORS[404], 410: ErrorResponseSerializer},
        description="The image as the model saw it (EXIF orientation applied, 8-bit RGB), as JPEG.",
    )
    def get(self, request, pk):
        response = HttpResponse(pictures.image_jpeg(_detection(pk)), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=3600"
        return response


class DetectionThumbnail(PictureView):
    @extend_schema(
        responses={(200, "image/jpeg"): OpenApiTypes.BINARY, 404: ERRORS[404], 410: ErrorResponseSerializer},
        description="A small JPEG of the image (longest side 320 px).",
    )
    def get(self, request, pk):
        response = HttpResponse(pictures.thumbnail_bytes(_detection(pk)), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=86400"
        return response


class DetectionFeedback(APIView):
    """Say whether a detection (or one of its boxes) was right; wrong boxes may name their right class."""

    permission_classes = [AllowAny]
    throttle_classes = [PredictionThrottle]
    parser_classes = [JSONParser]  # box_index and min_confidence may be null, which a form cannot say

    @extend_schema(
        request=FeedbackRequestSerializer,
        responses={201: FeedbackSerializer, **ERRORS},
        description="Stored as labelled data for retraining (see the export_feedback command).",
    )
    def post(self, request, pk):
        detection = _detection(pk)
        serializer = FeedbackRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        verdict = feedback.record_feedback(
            detection,
            verdict=data["verdict"],
            box_index=data.get("box_index"),
            correct_class=data.get("correct_class") or None,
            min_confidence=data.get("min_confidence"),
            comment=data.get("comment", ""),
            requester=Requester.from_request(request),
        )
        return Response(FeedbackSerializer(verdict).data, status=status.HTTP_201_CREATED)


# -- batches ----------------------------------------------------------------------------------------
class BatchListCreate(UploadListCreate):
    """POST a zip of images or several files to detect them in the background; GET your batches (signed in)."""

    prediction_kind = "detection"

    @extend_schema(
        operation_id="batches_create",
        request={"multipart/form-data": BatchRequestSerializer},
        responses={
            202: BatchSerializer,
            **PREDICTION_ERRORS,
            503: OpenApiResponse(
                ErrorResponseSerializer, description="No version in production, or the task queue does not answer."
            ),
        },
        description=f"At most {serving_batches.MAX_BATCH_IMAGES} images. Poll the batch for progress, then download "
        "its results as JSON or CSV.",
    )
    def post(self, request):
        serializer = BatchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        self.prediction_model = data.get("model") or settings.DEFAULT_DETECTION_MODEL
        batch = batches.create_batch(
            data["files"],
            model_name=self.prediction_model,
            params=_params(data),
            requester=Requester.from_request(request),
        )
        return Response(BatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(operation_id="batches_list", responses={200: BatchSerializer(many=True)})
    def get(self, request):
        return self.own_page(Batch.objects.all(), BatchSerializer)


class BatchDetail(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: BatchSerializer, 404: ERRORS[404]})
    def get(self, request, pk):
        return Response(BatchSerializer(get_object_or_404(Batch, pk=pk)).data)


class BatchResultsJson(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: inline_serializer(
                "BatchResults",
                {"batch": BatchSerializer(), "results": serializers.ListField(child=serializers.DictField())},
            ),
            404: ERRORS[404],
        },
        description="One entry per image in upload order: status done (with boxes), failed (with the error) "
        "or pending.",
    )
    def get(self, request, pk):
        batch = get_object_or_404(Batch, pk=pk)
        response = Response({"batch": BatchSerializer(batch).data, "results": batches.batch_results(batch)})
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}.json"'
        return response


class BatchResultsCsv(PictureView):
    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(
        responses={(200, "text/csv"): OpenApiTypes.STR, 404: ERRORS[404]},
        description="One row per box (images without boxes or with an error get one row).",
    )
    def get(self, request, pk):
        batch = get_object_or_404(Batch, pk=pk)
        response = HttpResponse(batches.batch_results_csv(batch), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}.csv"'
        return response


# -- compatibility with the clients of the system this product replaces ------------------------------
class CompatPredict(TimedView):
    """POST /predict when COMPAT_PREDICT_KIND is detection (the default): multipart field `file`; the
    same JSON as POST /api/v1/detections/ (status 200)."""

    permission_classes = [AllowAny]
    throttle_classes = [PredictionThrottle]
    parser_classes = [MultiPartParser]
    prediction_kind = "detection"

    @extend_schema(
        operation_id="compat_predict",
        request={"multipart/form-data": CompatPredictRequestSerializer},
        responses={200: DetectionSerializer, **PREDICTION_ERRORS},
        tags=["compatibility"],
    )
    def post(self, request):
        result = _detect_from(self, CompatPredictRequestSerializer, "file", source=Source.COMPAT)
        return _answer(result, status.HTTP_200_OK)
