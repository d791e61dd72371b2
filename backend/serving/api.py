"""What every prediction endpoint shares (the request's start time, upload lists, picture and CSV
answers), and model info for API clients."""

import time

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.pagination import Pagination
from backend.core.serializers import ErrorResponseSerializer
from backend.serving.permissions import CreateOpenListSignedIn
from backend.serving.serializers import ModelAvailabilitySerializer, ModelInfoSerializer
from backend.serving.services import model_availability, model_info
from backend.serving.throttling import PredictionThrottle, ReadBackThrottle


class TimedView(APIView):
    """What every prediction endpoint shares: when the request reached the view (so a prediction's
    latency covers parsing the upload too), and what backend.core.errors needs to count the errors it
    answers POSTs with: the kind of model, and the model asked for once the request is validated."""

    prediction_kind = ""  # "detection", "tabular" or "classification"
    prediction_model: str | None = None

    def initial(self, request, *args, **kwargs):
        self.started = time.perf_counter()
        super().initial(request, *args, **kwargs)


class UploadListCreate(TimedView):
    """POST uploads images (open to anyone, throttled); GET lists the caller's own (staff: everyone's)."""

    permission_classes = [CreateOpenListSignedIn]
    parser_classes = [MultiPartParser]
    pagination_class = Pagination  # the schema shows the GET as a page (limit, offset, count, results)

    def get_throttles(self):
        return [PredictionThrottle()] if self.request.method == "POST" else []

    def own_page(self, queryset, serializer_class) -> Response:
        """One page of `queryset`, newest first, restricted to the caller's rows unless staff."""
        if not self.request.user.is_staff:
            queryset = queryset.filter(user=self.request.user)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset.order_by("-created_at"), self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


class ImageRenderer(BaseRenderer):
    """Lets clients ask for the picture by its media type; the views return the bytes themselves."""

    media_type = "image/*"
    format = "image"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class PictureView(APIView):
    """Image endpoints: the picture on success, a JSON error body otherwise."""

    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer, ImageRenderer]
    throttle_classes = [ReadBackThrottle]

    def handle_exception(self, exc):
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


class CsvRenderer(BaseRenderer):
    """Lets clients ask for results by their media type; the views return the text themselves."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"
    render_style = "text"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class ModelInfo(APIView):
    """What a client needs to call a model: production version, its metrics, classes or features, input size."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: ModelInfoSerializer,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such model."),
        }
    )
    def get(self, request, name):
        return Response(model_info(name))


class ModelAvailability(APIView):
    """Whether a model answers now, or what it waits for: its production version, or the progress of
    the training job that makes its first one. Always 200: a name nobody registered is "missing"."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: ModelAvailabilitySerializer})
    def get(self, request, name):
        return Response(model_availability(name))


COMPAT_DEFAULT_MODELS = {"detection": "DEFAULT_DETECTION_MODEL", "classification": "DEFAULT_CLASSIFICATION_MODEL"}


class CompatModelInfo(APIView):
    """GET /model/info: the info of the model POST /predict answers with (COMPAT_PREDICT_KIND's default)."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="compat_model_info",
        responses={
            200: ModelInfoSerializer,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such model."),
        },
        tags=["compatibility"],
    )
    def get(self, request):
        return Response(model_info(getattr(settings, COMPAT_DEFAULT_MODELS[settings.COMPAT_PREDICT_KIND])))
