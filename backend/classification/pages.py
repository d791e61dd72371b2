"""End-user pages of classification: the upload page (probabilities drawn as bars) and the history.

Thin like detection's: the upload page calls the REST API from the browser (static/js/classify.js),
the history page lists rows and posts feedback through the API.
"""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from backend.classification.models import Classification
from backend.serving.pages import ensure_session, model_context, visible_to

HISTORY_PAGE_SIZE = 24


@require_GET
@ensure_csrf_cookie
def classify_page(request):
    ensure_session(request)
    model_name = request.GET.get("model") or settings.DEFAULT_CLASSIFICATION_MODEL
    context = {"model_name": model_name, **model_context(model_name), "nav": "classify"}
    return render(request, "classification/classify.html", context)


@require_GET
@ensure_csrf_cookie
def history_page(request):
    queryset, show_all = visible_to(
        request, Classification.objects.select_related("model_version__model").prefetch_related("feedback")
    )
    page = Paginator(queryset.order_by("-created_at"), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"classification": c, "class_names": c.class_names(), "feedback": _latest_verdict(c)} for c in page]
    context = {"page": page, "rows": rows, "show_all": show_all, "nav": "classify-history"}
    return render(request, "classification/history.html", context)


def _latest_verdict(classification: Classification):
    verdicts = sorted(classification.feedback.all(), key=lambda f: (f.created_at, f.pk))
    return verdicts[-1] if verdicts else None
