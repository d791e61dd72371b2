"""The scoring form: one field per feature of the production model's schema, scored on submit."""

from __future__ import annotations

import math

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from backend.core.services import record_prediction_error
from backend.scoring import services
from backend.scoring.models import TabularPrediction
from backend.serving.pages import model_context
from backend.serving.services import Requester
from mlops.exceptions import MlopsError


def _fields(schema: list[dict], submitted) -> list[dict]:
    fields = []
    for feature in schema:
        default = feature.get("mean")
        if default is not None and feature.get("dtype") == "int":
            default = round(default)
        fields.append(
            {
                "name": feature["name"],
                "dtype": feature.get("dtype", "float"),
                "min": feature.get("min"),
                "max": feature.get("max"),
                "value": submitted.get(feature["name"], "" if default is None else f"{default:.6g}"),
                "error": "",
            }
        )
    return fields


def _record(fields: list[dict]) -> dict:
    """Parse the submitted values; a field that is not a number gets its error."""
    record = {}
    for field in fields:
        try:
            value = float(field["value"])
        except (TypeError, ValueError):
            field["error"] = "enter a number"
            continue
        if not math.isfinite(value):
            field["error"] = "enter a finite number"
            continue
        record[field["name"]] = int(value) if field["dtype"] == "int" and value.is_integer() else value
    return record


@require_http_methods(["GET", "POST"])
def scoring_page(request):
    model_name = request.GET.get("model") or settings.DEFAULT_TABULAR_MODEL
    context = {"model_name": model_name, "nav": "score", "result": None, "error": "", **model_context(model_name)}
    info = context["model"]
    if info is None:
        return render(request, "scoring/score.html", context)
    schema = info.get("feature_schema") or []
    fields = _fields(schema, request.POST if request.method == "POST" else {})
    context.update(model=info, fields=fields)
    if request.method == "POST" and info["production"]:
        record = _record(fields)
        if len(record) == len(fields):
            if not request.session.session_key:
                request.session.save()
            try:
                result = services.score_records(
                    [record],
                    model_name=model_name,
                    requester=Requester.from_request(request),
                    source=TabularPrediction.Source.WEB,
                )
            except MlopsError as exc:
                record_prediction_error(model_name, "tabular", exc.code)
                context["error"] = exc.message
                field_name = exc.details.get("field") if exc.details else None
                for field in fields:
                    if field["name"] == field_name:
                        field["error"] = exc.details.get("problem", "invalid").replace("_", " ")
            else:
                prediction = result.predictions[0]
                context["result"] = {
                    "model": result.version.as_dict(),
                    "label": prediction["label"],
                    "probabilities": sorted(prediction["probabilities"].items(), key=lambda item: -item[1]),
                    "latency_ms": result.latency_ms,
                }
        else:
            context["error"] = "Some fields are not numbers."
    return render(request, "scoring/score.html", context)
