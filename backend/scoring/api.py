"""Tabular scoring REST API: open to anonymous callers by design, throttled at API_ANON_RATE."""

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from backend.core.serializers import ErrorResponseSerializer
from backend.scoring import services
from backend.scoring.serializers import ScoreRequestSerializer, ScoreResponseSerializer
from backend.serving.api import TimedView
from backend.serving.services import Requester
from backend.serving.throttling import PredictionThrottle


class TabularPredictions(TimedView):
    """Score records with the production version of a tabular model."""

    permission_classes = [AllowAny]
    throttle_classes = [PredictionThrottle]
    parser_classes = [JSONParser]  # records are objects of numbers: a form cannot carry them
    prediction_kind = "tabular"

    @extend_schema(
        request=ScoreRequestSerializer,
        responses={
            200: ScoreResponseSerializer,
            400: OpenApiResponse(
                ErrorResponseSerializer,
                description="A record does not fit the feature schema: details name the record, field and problem.",
                examples=[
                    OpenApiExample(
                        "missing field",
                        value={
                            "error": {
                                "code": "invalid_record",
                                "message": "record 0, field 'mean radius': is missing",
                                "details": {"record": 0, "field": "mean radius", "problem": "missing_field"},
                            }
                        },
                    )
                ],
            ),
            404: OpenApiResponse(ErrorResponseSerializer, description="No such model."),
            429: OpenApiResponse(ErrorResponseSerializer, description="Anonymous rate limit reached."),
            503: OpenApiResponse(ErrorResponseSerializer, description="No version in production."),
        },
        description="A class and its probabilities per record, and the version that answered. "
        "GET /api/v1/models/{name}/info/ lists the features.",
    )
    def post(self, request):
        serializer = ScoreRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        self.prediction_model = data.get("model") or settings.DEFAULT_TABULAR_MODEL
        result = services.score_records(
            data["records"],
            model_name=self.prediction_model,
            requester=Requester.from_request(request),
            started=self.started,
        )
        return Response(result.to_dict())
