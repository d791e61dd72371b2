"""Feedback: a person's verdict on a detection or one of its boxes, kept as labelled data."""

from __future__ import annotations

import logging

from django.db import transaction

from backend.detection.models import Detection, Feedback
from backend.serving.services import Requester
from mlops.exceptions import InvalidInput

logger = logging.getLogger(__name__)


def record_feedback(
    detection: Detection,
    *,
    verdict: str,
    box_index: int | None = None,
    correct_class: int | str | None = None,
    min_confidence: float | None = None,
    comment: str = "",
    requester: Requester | None = None,
) -> Feedback:
    """Store a verdict on the detection or one of its boxes; a wrong box may name its right class."""
    requester = requester or Requester()
    if box_index is not None and not 0 <= box_index < len(detection.boxes):
        raise InvalidInput(
            f"box_index {box_index} does not exist: this detection has {len(detection.boxes)} boxes.",
            code="invalid_feedback",
            details={"field": "box_index"},
        )
    class_id, class_name = None, ""
    if correct_class is not None and correct_class != "":
        if verdict != Feedback.Verdict.WRONG or box_index is None:
            raise InvalidInput(
                "correct_class goes with verdict 'wrong' on a box (box_index).",
                code="invalid_feedback",
                details={"field": "correct_class"},
            )
        class_id, class_name = _resolve_class(detection, correct_class)
    with transaction.atomic():
        feedback = Feedback.objects.create(
            detection=detection,
            box_index=box_index,
            verdict=verdict,
            correct_class_id=class_id,
            correct_class_name=class_name,
            min_confidence=min_confidence,
            comment=comment,
            user=requester.user,
            session_key=requester.session_key,
        )
    logger.info(
        "detection.feedback detection=%s box=%s verdict=%s class=%s", detection.pk, box_index, verdict, class_name
    )
    return feedback


def _resolve_class(detection: Detection, value: int | str) -> tuple[int, str]:
    names = detection.class_names()
    # isdecimal, not isdigit: "²" is a digit to Python but not a number int() reads.
    if isinstance(value, int) or (isinstance(value, str) and value.isdecimal()):
        index = int(value)
        if 0 <= index < len(names):
            return index, names[index]
    elif value in names:
        return names.index(value), value
    raise InvalidInput(
        f"{value!r} is not a class of this model; classes: {names}.",
        code="invalid_feedback",
        details={"field": "correct_class", "classes": names},
    )
