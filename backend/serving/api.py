"""What every prediction endpoint shares (the request's start time), and model info for API clients."""

import time

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.serializers import ErrorResponseSerializer
from backend.serving.serializers import ModelInfoSerializer
from backend.serving.services import model_info


class TimedView(APIView):
    """What every prediction endpoint shares: when the request reached the view (so a prediction's
    latency covers parsing the upload too), and what backend.core.errors needs to count the errors it
    answers POSTs with: the kind of model, and the model asked for once the request is validated."""

    prediction_kind = ""  # "detection", "tabular" or "classification"
    prediction_model: str | None = None

    def initial(self, request, *args, **kwargs):
        self.started = time.perf_counter()
        super().initial(request, *args, **kwargs)


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
