"""Feedback: a person's verdict on a classification, kept as labelled data."""

from __future__ import annotations

import logging

from backend.classification.models import Classification, ClassificationFeedback
from backend.serving.services import Requester
from mlops.exceptions import InvalidInput

logger = logging.getLogger(__name__)


def record_feedback(
    classification: Classification,
    *,
    verdict: str,
    correct_class: str = "",
    comment: str = "",
    requester: Requester | None = None,
) -> ClassificationFeedback:
    """Store a verdict on the classification's best class; a wrong one may name the right class (by name)."""
    requester = requester or Requester()
    if correct_class:
        if verdict != ClassificationFeedback.Verdict.WRONG:
            raise InvalidInput(
                "correct_class goes with verdict 'wrong'.",
                code="invalid_feedback",
                details={"field": "correct_class"},
            )
        names = classification.class_names()
        if correct_class not in names:
            raise InvalidInput(
                f"{correct_class!r} is not a class of this model; classes: {names}.",
                code="invalid_feedback",
                details={"field": "correct_class", "classes": names},
            )
    feedback = ClassificationFeedback.objects.create(
        classification=classification,
        verdict=verdict,
        correct_class=correct_class,
        comment=comment,
        user=requester.user,
        session_key=requester.session_key,
    )
    logger.info(
        "classification.feedback classification=%s verdict=%s class=%s", classification.pk, verdict, correct_class
    )
    return feedback
