"""What the end-user pages of every prediction app share: a session for anonymous visitors (their
own uploads show up in their history) and the model a page calls, or why it cannot answer yet."""

from __future__ import annotations

from django.urls import reverse

from backend.serving.services import model_availability, model_info
from mlops.exceptions import NotFound


def ensure_session(request) -> str:
    if not request.session.session_key:
        request.session.save()
    return request.session.session_key


def model_context(model_name: str) -> dict:
    """The model a page calls and whether it answers now; until it does, the training job it waits for
    (`availability`, what the page then polls at `availability_url` to switch to its form by itself)."""
    availability = model_availability(model_name)
    context = {
        "availability": availability,
        "availability_url": reverse("api-model-availability", args=[model_name]),
        "training_job": availability["training_job"],
    }
    try:
        return {**context, "model": model_info(model_name), "model_missing": False}
    except NotFound:
        return {**context, "model": None, "model_missing": True}


def visible_to(request, queryset) -> tuple:
    """The history a page shows: staff may ask for everyone's (`?all=1`), a signed-in user sees their
    own, an anonymous visitor what this browser's session uploaded. Returns (queryset, showing all)."""
    session_key = ensure_session(request)
    if request.user.is_staff and request.GET.get("all") == "1":
        return queryset, True
    if request.user.is_authenticated:
        return queryset.filter(user=request.user), False
    return queryset.filter(session_key=session_key, user__isnull=True), False
