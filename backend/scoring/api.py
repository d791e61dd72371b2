"""Tabular scoring REST API: open to anonymous callers by design, throttled at API_ANON_RATE.

A call carries up to 1,000 records of dozens of numbers: the body is parsed and rendered by orjson,
its values are checked by the scorer as one array (not a DRF field per value; ScoreRequestSerializer
still documents the body and answers for a malformed one), and the prediction log is written once
the answer went out.
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from backend.core.responses import after_response
from backend.core.serializers import ErrorResponseSerializer
from backend.scoring import services
from backend.scoring.parsers import OrjsonParser, OrjsonRenderer
from backend.scoring.serializers import MAX_RECORDS_PER_CALL, ScoreRequestSerializer, ScoreResponseSerializer
from backend.serving.api import TimedView
from backend.serving.services import Requester
from backend.serving.throttling import PredictionThrottle


class TabularPredictions(TimedView):
    """Score records with the production version of a tabular model."""

    permission_classes = [AllowAny]
    throttle_classes = [PredictionThrottle]
    parser_classes = [OrjsonParser]  # records are objects of numbers: a form cannot carry them
    renderer_classes = [OrjsonRenderer]
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
        records, model = _score_request(request.data)
        self.prediction_model = model or settings.DEFAULT_TABULAR_MODEL
        result = services.score_records(
            records,
            model_name=self.prediction_model,
            requester=Requester.from_request(request),
            started=self.started,
            defer_log=True,
        )
        response = Response(result.to_dict())
        return after_response(response, result.log_predictions, what=f"tabular prediction log {result.request_id}")


def _score_request(data) -> tuple[list[dict], str | None]:
    """The records and model name of a request, checked without running a DRF field per value.

    A well-formed body (an object whose `records` is a list of 1 to MAX_RECORDS_PER_CALL objects) is
    taken as it is: the scorer then checks every value against the feature schema, as one array. Any
    other body goes through ScoreRequestSerializer, whose errors name the field as the schema says.
    """
    if isinstance(data, dict):
        records, model = data.get("records"), data.get("model")
        if (
            type(records) is list
            and 0 < len(records) <= MAX_RECORDS_PER_CALL
            and all(type(record) is dict for record in records)
            and ((model is None and "model" not in data) or type(model) is str)
        ):
            if model is not None:
                field = ScoreRequestSerializer().fields["model"]
                try:
                    model = field.run_validation(model)
                except ValidationError as exc:
                    raise ValidationError({"model": exc.detail}) from None
            return records, model
    serializer = ScoreRequestSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["records"], serializer.validated_data.get("model")
