"""Recording what every prediction endpoint shares: the errors it answers with."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError

from backend.core import metrics
from backend.core.models import PredictionError

logger = logging.getLogger(__name__)

# Not kept as rows: a client over its rate limit would otherwise turn its flood into writes.
NOT_KEPT = frozenset({"throttled"})


def record_prediction_error(model_name: str | None, kind: str, code: str) -> None:
    """Count the error on /metrics and keep it for the roll-ups; never fails the answer it belongs to."""
    metrics.count_prediction_error(model_name, kind, code)
    if code in NOT_KEPT:
        return
    default = {
        "detection": settings.DEFAULT_DETECTION_MODEL,
        "classification": settings.DEFAULT_CLASSIFICATION_MODEL,
    }.get(kind, settings.DEFAULT_TABULAR_MODEL)
    try:
        PredictionError.objects.create(model_name=(model_name or default or "")[:100], kind=kind, code=code[:64])
    except DatabaseError:
        logger.warning("prediction_error.not_recorded model=%s kind=%s code=%s", model_name, kind, code, exc_info=True)
