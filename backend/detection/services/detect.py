"""Detections: run an image through the production detector and log the prediction.

`detect_image` is the one path every upload takes (API, upload page, /predict, batches): decode
once, predict on the version the holder hands out, and only then write anything (the upload, then
the row). A failure before the row exists leaves no file behind. The row is committed before the
answer goes out, so every id a client is given can be read back; only the image's descriptors
(for drift) may follow the answer, and `fill_missing_features` completes rows whose process died
before it wrote them.
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

from backend.core import metrics
from backend.detection.models import Detection
from backend.serving import uploads
from backend.serving.loading import ServingVersion
from backend.serving.services import Requester, inference_slot, served_model
from backend.serving.signals import prediction_logged
from backend.serving.sources import Source
from backend.serving.uploads import check_upload_size, decode_upload, storage_name
from mlops.inference.features import image_features

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
DEFAULT_MAX_DET = 300
MAX_MAX_DET = 1000


@dataclass(frozen=True)
class DetectionParams:
    """The knobs of one detection, as the API and the batches take them."""

    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    max_det: int = DEFAULT_MAX_DET


@dataclass(frozen=True)
class DetectionResult:
    """One answered detection: its saved row, the version that answered, and the rest of the
    prediction log (the image's descriptors, then `prediction_logged`) to finish once the answer
    has gone out."""

    detection: Detection
    version: ServingVersion
    finish: Callable[[], None]


def detect_image(
    data: bytes,
    *,
    filename: str = "",
    model_name: str | None = None,
    params: DetectionParams | None = None,
    requester: Requester | None = None,
    source: str = Source.API,
    batch=None,
    started: float | None = None,
    defer_features: bool = False,
) -> DetectionResult:
    """Detect objects in uploaded image bytes with the production detector and log the prediction.

    `started` (time.perf_counter()) is when the request arrived; latency is measured from it up to
    the answer. The upload and the row are saved before this returns. With `defer_features`, the
    image's descriptors and `prediction_logged` are left to the result's `finish()`, which the API
    runs once the answer has been sent (a few ms on a photo, 17 ms on 12 megapixels). Raises
    InvalidInput / InputTooLarge for bad images, ModelUnavailable when nothing is in production.
    """
    started = started if started is not None else time.perf_counter()
    requester = requester or Requester()
    params = params or DetectionParams()
    check_upload_size(len(data))
    served = served_model(model_name or settings.DEFAULT_DETECTION_MODEL, "detection")
    # A photo far larger than the model's input is decoded at the JPEG scale closest above it.
    image = decode_upload(data, fit=served.predictor.input_size)
    with inference_slot(served.predictor):
        result = served.predictor.predict(image, conf=params.conf, iou=params.iou, max_det=params.max_det)
    boxes = [box.to_dict() for box in result.boxes]
    detection = Detection(
        model_version_id=served.version.id,
        source=source,
        batch=batch,
        filename=(filename or "")[:255],
        width=result.width,
        height=result.height,
        boxes=boxes,
        box_count=len(boxes),
        max_confidence=max((box["confidence"] for box in boxes), default=None),
        conf=params.conf,
        iou=params.iou,
        max_det=params.max_det,
        inference_ms=round(result.inference_ms, 3),
        user=requester.user,
        session_key=requester.session_key,
    )
    detection.image.name = storage_name("detections", detection.id, data)
    if not defer_features:
        detection.features = image_features(image)
    detection.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    _save(detection, data)
    _observe(served.version, detection)
    answered = DetectionResult(
        detection, served.version, functools.partial(_finish, detection, image, served.version.model_name)
    )
    if not defer_features:
        answered.finish()
    return answered


def _observe(version: ServingVersion, detection: Detection) -> None:
    metrics.observe_prediction(
        version.model_name,
        version.version,
        "detection",
        latency_s=detection.latency_ms / 1000,
        inference_s=detection.inference_ms / 1000,
        class_names=[box["class_name"] for box in detection.boxes],
    )


def _save(detection: Detection, data: bytes) -> None:
    """Write the upload, then the row; remove the file if the row fails.

    The thumbnail is made on first request (pictures.thumbnail_bytes): resizing a large photo costs
    more than the rest of the bookkeeping together, and most uploads are never listed.
    """
    name = default_storage.save(detection.image.name, ContentFile(data))
    try:
        detection.image.name = name
        detection.save(force_insert=True)
    except BaseException:
        default_storage.delete(name)
        raise


def _finish(detection: Detection, image: Image.Image, model_name: str) -> None:
    """The image's descriptors on the saved row (unless already there), then `prediction_logged`
    for whoever samples predictions (shadow mode), once committed."""
    if not detection.features:
        detection.features = image_features(image)
        Detection.objects.filter(pk=detection.pk).update(features=detection.features)
    transaction.on_commit(lambda: _announce(detection, model_name), robust=True)


def fill_missing_features(*, older_than_s: float = 60.0, limit: int = 500) -> int:
    """Descriptors of detections whose web process died right after answering (see uploads.fill_missing_features)."""
    return uploads.fill_missing_features(Detection, older_than_s=older_than_s, limit=limit)


def _announce(detection: Detection, model_name: str) -> None:
    prediction_logged.send(
        sender=Detection,
        kind="detection",
        model_name=model_name,
        version_id=detection.model_version_id,
        prediction_ids=[str(detection.pk)],
    )
