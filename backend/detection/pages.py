"""End-user pages of detection: the upload page and the history of past detections.

The pages are thin: the upload page calls the REST API from the browser (static/js/detect.js), the
history page lists rows and posts feedback through the API. An anonymous visitor gets a session
so that their own uploads show up in their history.
"""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from backend.detection.models import Detection
from backend.detection.services.detect import DEFAULT_CONF
from backend.serving.pages import ensure_session, model_context, visible_to

HISTORY_PAGE_SIZE = 24


@require_GET
@ensure_csrf_cookie
def detect_page(request):
    ensure_session(request)
    model_name = request.GET.get("model") or settings.DEFAULT_DETECTION_MODEL
    context = {"model_name": model_name, **model_context(model_name), "nav": "detect"}
    return render(request, "detection/detect.html", context)


@require_GET
@ensure_csrf_cookie
def history_page(request):
    queryset, show_all = visible_to(
        request, Detection.objects.select_related("model_version__model").prefetch_related("feedback")
    )
    page = Paginator(queryset.order_by("-created_at"), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {
            "detection": d,
            "class_names": d.class_names(),
            "feedback": _latest_verdicts(d),
            # Boxes are shown (and judged) at the usual threshold even when the upload asked for less.
            "threshold": max(d.conf, DEFAULT_CONF),
        }
        for d in page
    ]
    context = {"page": page, "rows": rows, "show_all": show_all, "nav": "history"}
    return render(request, "detection/history.html", context)


def _latest_verdicts(detection: Detection) -> dict:
    """The latest verdict on the image ("image") and on each box (its index), for the buttons' state."""
    latest: dict = {}
    for feedback in sorted(detection.feedback.all(), key=lambda f: (f.created_at, f.pk)):
        key = "image" if feedback.box_index is None else feedback.box_index
        latest[key] = feedback
    return latest
