"""Classification REST API: classify an image, read it back as a thumbnail, give feedback.

Access is detection's (backend.serving.permissions, backend.serving.throttling): classifying is open
to anonymous callers, throttled at API_ANON_RATE; listing past classifications needs a login (users
see their own, staff everyone's); one classification is reachable by whoever holds its id, a random
UUID returned only to the caller who made it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.classification.models import Classification, ClassificationBatch
from backend.classification.serializers import (
    ClassificationBatchRequestSerializer,
    ClassificationBatchSerializer,
    ClassificationFeedbackRequestSerializer,
    ClassificationFeedbackSerializer,
    ClassificationRequestSerializer,
    ClassificationSerializer,
    CompatClassificationSerializer,
    CompatClassifyRequestSerializer,
)
from backend.classification.services import batches, classify, feedback, pictures
from backend.core.responses import after_response
from backend.core.serializers import ErrorResponseSerializer
from backend.serving import batches as serving_batches
from backend.serving.api import CsvRenderer, PictureView, TimedView, UploadListCreate
from backend.serving.services import Requester
from backend.serving.sources import Source
from backend.serving.throttling import PredictionThrottle
from backend.serving.uploads import check_upload_size

ERRORS = {
    400: OpenApiResponse(ErrorResponseSerializer, description="Invalid input; the body names the field."),
    404: OpenApiResponse(ErrorResponseSerializer, description="No such classification or model."),
}
PREDICTION_ERRORS = {
    **ERRORS,
    400: OpenApiResponse(
        ErrorResponseSerializer,
        description="Invalid input; the body names the field (top_k past the model's classes: invalid_parameter; "
        "not an image: invalid_image; a model of another kind: wrong_model_kind).",
    ),
    413: OpenApiResponse(ErrorResponseSerializer, description="File or image too large (image_too_large...)."),
    429: OpenApiResponse(ErrorResponseSerializer, description="Anonymous rate limit (API_ANON_RATE) reached."),
    503: OpenApiResponse(ErrorResponseSerializer, description="No version in production, or it cannot load."),
}


class ClassificationListCreate(UploadListCreate):
    """POST an image to classify it (open to anyone, throttled); GET your past classifications (signed in)."""

    prediction_kind = "classification"

    @extend_schema(
        operation_id="classifications_create",
        request={"multipart/form-data": ClassificationRequestSerializer},
        responses={201: ClassificationSerializer, **PREDICTION_ERRORS},
        description="Classify an image with the production version of the classifier: its top_k best classes "
        "with their probabilities, best first. The answer names the version that actually answered. Open to "
        "anonymous callers (throttled at API_ANON_RATE).",
    )
    def post(self, request):
        source = Source.WEB if request.headers.get("X-Modelyard-Client") == "web" else Source.API
        result = _classify_from(self, ClassificationRequestSerializer, "image", source=source)
        body = ClassificationSerializer(result.classification, context={"served_version": result.version}).data
        return _answer(result, body, status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="classifications_list",
        responses={
            200: ClassificationSerializer(many=True),
            400: OpenApiResponse(ErrorResponseSerializer, description="limit or offset not a whole number in range."),
        },
        description="Your classifications, newest first (staff see everyone's). Needs a signed-in user.",
    )
    def get(self, request):
        return self.own_page(Classification.objects.select_related("model_version__model"), ClassificationSerializer)


def _classify_from(
    view: TimedView, serializer_class, file_field: str, *, source: str
) -> classify.ClassificationOutcome:
    serializer = serializer_class(data=view.request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    view.prediction_model = data.get("model") or settings.DEFAULT_CLASSIFICATION_MODEL
    upload = data[file_field]
    check_upload_size(upload.size)
    return classify.classify_image(
        upload.read(),
        filename=upload.name or "",
        model_name=view.prediction_model,
        top_k=data.get("top_k"),
        requester=Requester.from_request(view.request),
        source=source,
        started=view.started,
        defer_features=True,
    )


def _answer(result: classify.ClassificationOutcome, body: dict, status_code: int) -> Response:
    """The saved classification's JSON; its image descriptors computed right after the answer went out."""
    response = Response(body, status=status_code)
    return after_response(response, result.finish, what=f"classification features {result.classification.pk}")


def _classification(pk) -> Classification:
    return get_object_or_404(Classification.objects.select_related("model_version__model"), pk=pk)


class ClassificationDetail(APIView):
    """One classification with its feedback; reachable by whoever holds its id."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: ClassificationSerializer, 404: ERRORS[404]})
    def get(self, request, pk):
        classification = _classification(pk)
        return Response(ClassificationSerializer(classification, context={"with_feedback": True}).data)


class ClassificationThumbnail(PictureView):
    """The thumbnail on success, a JSON error body otherwise."""

    @extend_schema(
        responses={
            (200, "image/jpeg"): OpenApiTypes.BINARY,
            404: ERRORS[404],
            410: OpenApiResponse(ErrorResponseSerializer, description="The image was deleted."),
            429: OpenApiResponse(ErrorResponseSerializer, description="Read-back rate limit (API_READBACK_RATE)."),
        },
        description="A small JPEG of the image as the model saw it (longest side 320 px).",
    )
    def get(self, request, pk):
        response = HttpResponse(pictures.thumbnail_bytes(_classification(pk)), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=86400"
        return response


class ClassificationFeedback(APIView):
    """Say whether a classification's best class was right; a wrong one may name the right class."""

    permission_classes = [AllowAny]
    throttle_classes = [PredictionThrottle]
    parser_classes = [JSONParser]

    @extend_schema(
        request=ClassificationFeedbackRequestSerializer,
        responses={
            201: ClassificationFeedbackSerializer,
            400: OpenApiResponse(
                ErrorResponseSerializer,
                description="Invalid input; the body names the field (a class the model does not have: "
                "invalid_feedback, field correct_class).",
            ),
            404: ERRORS[404],
            429: OpenApiResponse(ErrorResponseSerializer, description="Anonymous rate limit (API_ANON_RATE) reached."),
        },
        description="Stored as labelled data; it counts as a training label when given by staff or a trusted "
        "reviewer (the `trusted` field).",
    )
    def post(self, request, pk):
        classification = _classification(pk)
        serializer = ClassificationFeedbackRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        verdict = feedback.record_feedback(
            classification,
            verdict=data["verdict"],
            correct_class=data.get("correct_class", ""),
            comment=data.get("comment", ""),
            requester=Requester.from_request(request),
        )
        return Response(ClassificationFeedbackSerializer(verdict).data, status=status.HTTP_201_CREATED)


class CompatPredict(TimedView):
    """POST /predict when COMPAT_PREDICT_KIND is classification: multipart field `file`; the previous
    system's `prediction` (the best class) and `confidence`, then the same JSON as POST
    /api/v1/classifications/ (status 200)."""

    permission_classes = [AllowAny]
    throttle_classes = [PredictionThrottle]
    parser_classes = [MultiPartParser]
    prediction_kind = "classification"

    @extend_schema(
        operation_id="compat_predict",
        request={"multipart/form-data": CompatClassifyRequestSerializer},
        responses={200: CompatClassificationSerializer, **PREDICTION_ERRORS},
        tags=["compatibility"],
    )
    def post(self, request):
        result = _classify_from(self, CompatClassifyRequestSerializer, "file", source=Source.COMPAT)
        body = CompatClassificationSerializer(result.classification, context={"served_version": result.version}).data
        return _answer(result, body, status.HTTP_200_OK)


# -- batches ----------------------------------------------------------------------------------------
class ClassificationBatchListCreate(UploadListCreate):
    """POST a zip of images or several files to classify them in the background; GET your batches (signed in)."""

    prediction_kind = "classification"

    @extend_schema(
        operation_id="classification_batches_create",
        request={"multipart/form-data": ClassificationBatchRequestSerializer},
        responses={
            202: ClassificationBatchSerializer,
            **PREDICTION_ERRORS,
            503: OpenApiResponse(
                ErrorResponseSerializer, description="No version in production, or the task queue does not answer."
            ),
        },
        description=f"At most {serving_batches.MAX_BATCH_IMAGES} images. Poll the batch for progress, then download "
        "its results as JSON or CSV.",
    )
    def post(self, request):
        serializer = ClassificationBatchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        self.prediction_model = data.get("model") or settings.DEFAULT_CLASSIFICATION_MODEL
        batch = batches.create_batch(
            data["files"],
            model_name=self.prediction_model,
            top_k=data.get("top_k"),
            requester=Requester.from_request(request),
        )
        return Response(ClassificationBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="classification_batches_list", responses={200: ClassificationBatchSerializer(many=True)}
    )
    def get(self, request):
        return self.own_page(ClassificationBatch.objects.all(), ClassificationBatchSerializer)


class ClassificationBatchDetail(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: ClassificationBatchSerializer, 404: ERRORS[404]})
    def get(self, request, pk):
        return Response(ClassificationBatchSerializer(get_object_or_404(ClassificationBatch, pk=pk)).data)


class ClassificationBatchResultsJson(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: inline_serializer(
                "ClassificationBatchResults",
                {
                    "batch": ClassificationBatchSerializer(),
                    "results": serializers.ListField(child=serializers.DictField()),
                },
            ),
            404: ERRORS[404],
        },
        description="One entry per image in upload order: status done (with its prediction, confidence and "
        "classes), failed (with the error) or pending.",
    )
    def get(self, request, pk):
        batch = get_object_or_404(ClassificationBatch, pk=pk)
        body = {"batch": ClassificationBatchSerializer(batch).data, "results": batches.batch_results(batch)}
        response = Response(body)
        response["Content-Disposition"] = f'attachment; filename="classification-batch-{batch.pk}.json"'
        return response


class ClassificationBatchResultsCsv(PictureView):
    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(
        responses={(200, "text/csv"): OpenApiTypes.STR, 404: ERRORS[404]},
        description="One row per image and listed class, best first (images with an error get one row).",
    )
    def get(self, request, pk):
        batch = get_object_or_404(ClassificationBatch, pk=pk)
        response = HttpResponse(batches.batch_results_csv(batch), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="classification-batch-{batch.pk}.csv"'
        return response
