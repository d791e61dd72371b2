"""Classifications: run an image through the production classifier and log the prediction.

The same path as detection's `detect_image`: decode once, predict on the version the holder hands
out, and only then write anything (the upload, then the row), committed before the answer goes out.
Only the image's descriptors (for drift) follow the answer, through the result's `finish()`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image

from backend.classification.models import Classification
from backend.core import metrics
from backend.serving.loading import ServingVersion
from backend.serving.services import Requester, inference_slot, served_model
from backend.serving.signals import prediction_logged
from backend.serving.sources import Source
from backend.serving.uploads import check_upload_size, decode_upload, storage_name
from mlops.inference.classifier import DEFAULT_TOP_K, check_top_k
from mlops.inference.features import image_features

KIND = "classification"


@dataclass(frozen=True)
class ClassificationOutcome:
    """One answered classification: its saved row, the version that answered, and the rest of the
    prediction log (the image's descriptors, then `prediction_logged`) to finish once the answer
    has gone out."""

    classification: Classification
    version: ServingVersion
    finish: Callable[[], None]


def classify_image(
    data: bytes,
    *,
    filename: str = "",
    model_name: str | None = None,
    top_k: int | None = None,
    requester: Requester | None = None,
    source: str = Source.API,
    started: float | None = None,
    defer_features: bool = False,
    batch=None,
) -> ClassificationOutcome:
    """Classify uploaded image bytes with the production classifier and log the prediction.

    `top_k` is how many classes the answer lists: 1 to the number of classes (None: at most 5).
    `started` (time.perf_counter()) is when the request arrived. The upload and the row are saved
    before this returns; with `defer_features`, the descriptors and `prediction_logged` wait for the
    result's `finish()`. Raises InvalidInput / InputTooLarge for bad input (nothing written),
    ModelNotFound, ModelUnavailable when nothing is in production, InvalidInput wrong_model_kind.
    """
    started = started if started is not None else time.perf_counter()
    requester = requester or Requester()
    check_upload_size(len(data))
    served = served_model(model_name or settings.DEFAULT_CLASSIFICATION_MODEL, KIND)
    n_classes = len(served.predictor.class_names)
    top_k = min(DEFAULT_TOP_K, n_classes) if top_k is None else check_top_k(top_k, n_classes)
    image = decode_upload(data)
    with inference_slot(served.predictor):
        result = served.predictor.predict(image, top_k=top_k)
    best = result.top1
    classification = Classification(
        model_version_id=served.version.id,
        source=source,
        batch=batch,
        filename=(filename or "")[:255],
        width=result.width,
        height=result.height,
        classes=[score.to_dict() for score in result.classes],
        probabilities=[round(p, 6) for p in result.probabilities],
        class_name=best.class_name[:100],
        confidence=round(best.probability, 6),
        top_k=top_k,
        inference_ms=round(result.inference_ms, 3),
        user=requester.user,
        session_key=requester.session_key,
    )
    classification.image.name = storage_name("classifications", classification.id, data)
    if not defer_features:
        classification.features = image_features(image)
    classification.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    _save(classification, data)
    metrics.observe_prediction(
        served.version.model_name,
        served.version.version,
        KIND,
        latency_s=classification.latency_ms / 1000,
        inference_s=classification.inference_ms / 1000,
        class_names=[classification.class_name],
    )
    answered = ClassificationOutcome(
        classification,
        served.version,
        functools.partial(_finish, classification, image, served.version.model_name),
    )
    if not defer_features:
        answered.finish()
    return answered


def _save(classification: Classification, data: bytes) -> None:
    """Write the upload, then the row; remove the file if the row fails (the thumbnail is made when asked for)."""
    name = default_storage.save(classification.image.name, ContentFile(data))
    try:
        classification.image.name = name
        classification.save(force_insert=True)
    except BaseException:
        default_storage.delete(name)
        raise


def _finish(classification: Classification, image: Image.Image, model_name: str) -> None:
    """The image's descriptors on the saved row (unless already there), then `prediction_logged` once committed."""
    if not classification.features:
        classification.features = image_features(image)
        Classification.objects.filter(pk=classification.pk).update(features=classification.features)
    transaction.on_commit(lambda: _announce(classification, model_name), robust=True)


def _announce(classification: Classification, model_name: str) -> None:
    prediction_logged.send(
        sender=Classification,
        kind=KIND,
        model_name=model_name,
        version_id=classification.model_version_id,
        prediction_ids=[str(classification.pk)],
    )
