"""Every error leaves as JSON: {"error": {"code", "message", ...}}.

One place maps DRF's exceptions, the ML core's MlopsError family and Django's own 400/403/404/500
handlers onto that body; the errors of prediction endpoints are counted here too, by that code.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from backend.core.services import record_prediction_error
from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def api_exception_handler(exc, context):
    """DRF exception handler: the same body for validation, auth, not-found and ML core errors."""
    response = _error_response(exc, context)
    _count_prediction_error(context, response)
    return response


def _count_prediction_error(context, response) -> None:
    """Count the error a prediction endpoint answers a POST with (modelyard_prediction_errors_total).

    A prediction view names its `prediction_kind`, and its `prediction_model` once the request named
    one; an exception DRF does not handle becomes Django's 500 body, code "server_error".
    """
    view, request = context.get("view"), context.get("request")
    kind = getattr(view, "prediction_kind", "")
    if not kind or request is None or request.method != "POST":
        return
    code = response.data["error"]["code"] if response is not None else "server_error"
    record_prediction_error(getattr(view, "prediction_model", None), kind, code)


def _error_response(exc, context):
    if isinstance(exc, MlopsError):
        body = error_body(exc.code, exc.message, **({"details": exc.details} if exc.details else {}))
        request = context.get("request")
        if exc.private and request is not None and getattr(request.user, "is_staff", False):
            body["error"]["reason"] = exc.private  # paths and library errors: for the operators only
        return Response(body, status=exc.status)

    # Convert Django's own exceptions here (DRF does it too, but only inside its handler) so that
    # their DRF code ("not_found", "permission_denied") reaches the body.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("validation_error", _first_message(fields), fields=fields)
    else:
        code = getattr(exc, "default_code", "error")
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(getattr(detail, "code", None) or code, str(detail))
    return response


def _first_message(fields) -> str:
    """A one-line summary naming the first bad field, e.g. "image: No file was submitted."."""
    for name, problems in fields.items() if isinstance(fields, dict) else []:
        if isinstance(problems, dict):
            return f"{name}.{_first_message(problems)}"
        if isinstance(problems, list) and problems:
            first = problems[0]
            if isinstance(first, dict):
                return f"{name}[0].{_first_message(first)}"
            return f"{name}: {first}"
        return f"{name}: {problems}"
    return "Invalid input."


def bad_request(request, exception=None):
    return JsonResponse(error_body("bad_request", "Bad request."), status=status.HTTP_400_BAD_REQUEST)


def permission_denied(request, exception=None):
    return JsonResponse(error_body("permission_denied", "Permission denied."), status=status.HTTP_403_FORBIDDEN)


def page_not_found(request, exception=None):
    return JsonResponse(error_body("not_found", f"No page at {request.path}."), status=status.HTTP_404_NOT_FOUND)


def server_error(request):
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)
