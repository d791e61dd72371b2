"""Detections: run an image through the production detector, log it, render it, collect feedback.

`detect_image` is the one path every upload takes (API, upload page, /predict, batches): decode
once, predict on the version the holder hands out, and only then write anything (the upload, then
the row). A failure before the row exists leaves no file behind.
"""

from __future__ import annotations

import functools
import io
import logging
import mimetypes
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image

from backend.core.mlops_config import mlops_config
from backend.detection import rendering
from backend.detection.models import Detection, Feedback, Source
from backend.detection.serving import inference_slot, served_model
from mlops.exceptions import InputTooLarge, InvalidInput, MlopsError, NotFound
from mlops.inference.features import image_features
from mlops.inference.images import decode_image

logger = logging.getLogger(__name__)

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
DEFAULT_MAX_DET = 300
MAX_MAX_DET = 1000


class ImageGone(MlopsError):
    """The stored image was deleted by retention (the detection row is still there)."""

    code = "image_deleted"
    status = 410


@dataclass(frozen=True)
class Requester:
    """Who asked: a signed-in user, an anonymous browser session, or nobody we can name."""

    user: object | None = None
    session_key: str = ""

    @classmethod
    def from_request(cls, request) -> Requester:
        user = request.user if request.user.is_authenticated else None
        session = getattr(request, "session", None)
        return cls(user=user, session_key=(session.session_key or "") if session is not None else "")


def check_upload_size(size: int | None) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if size is not None and size > limit:
        raise InputTooLarge(
            f"The file is {size} bytes; the limit is {limit} bytes.",
            code="file_too_large",
            details={"size": size, "limit": limit},
        )


def decode_upload(data: bytes) -> Image.Image:
    config = mlops_config()
    return decode_image(data, max_pixels=config.max_image_pixels, max_side=config.max_image_side)


def _storage_name(detection_id: uuid.UUID, filename: str, data: bytes) -> str:
    suffix = PurePath(filename).suffix.lower()
    if not suffix or len(suffix) > 6 or not suffix[1:].isalnum():
        suffix = f".{(Image.open(io.BytesIO(data)).format or 'bin').lower()}"
    day = timezone.now().strftime("%Y/%m/%d")
    return f"detections/{day}/{detection_id.hex}{suffix}"


def detect_image(
    data: bytes,
    *,
    filename: str = "",
    model_name: str | None = None,
    conf: float = DEFAULT_CONF,
    iou: float = DEFAULT_IOU,
    max_det: int = DEFAULT_MAX_DET,
    requester: Requester | None = None,
    source: str = Source.API,
    batch=None,
    started: float | None = None,
    defer_log: bool = False,
) -> Detection:
    """Detect objects in uploaded image bytes with the production detector and log the prediction.

    `started` (time.perf_counter()) is when the request arrived; latency is measured from it up to
    the answer. With `defer_log`, the prediction log (image features, the stored upload, the row)
    is left to `detection.write_log()`, which the API runs once the answer has been sent: the log
    costs the caller no latency. Raises InvalidInput / InputTooLarge for bad images,
    ModelUnavailable when nothing is in production.
    """
    started = started if started is not None else time.perf_counter()
    requester = requester or Requester()
    model_name = model_name or settings.DEFAULT_DETECTION_MODEL
    check_upload_size(len(data))
    image = decode_upload(data)
    served = served_model(model_name, "detection")
    with inference_slot(served.predictor):
        result = served.predictor.predict(image, conf=conf, iou=iou, max_det=max_det)
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
        conf=conf,
        iou=iou,
        max_det=max_det,
        inference_ms=round(result.inference_ms, 3),
        user=requester.user,
        session_key=requester.session_key,
    )
    detection.served_version = served.version
    detection.image.name = _storage_name(detection.id, filename, data)
    detection.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    detection.write_log = functools.partial(_write_log, detection, data, image)
    if not defer_log:
        detection.write_log()
    return detection


def _write_log(detection: Detection, data: bytes, image: Image.Image) -> None:
    """Compute the image's features, write the upload, then the row; remove the file if the row fails.

    The thumbnail is made on first request (thumbnail_bytes): resizing a large photo costs more than
    the rest of the bookkeeping together, and most uploads are never listed.
    """
    detection.features = image_features(image)
    name = default_storage.save(detection.image.name, ContentFile(data))
    try:
        detection.image.name = name
        detection.save(force_insert=True)
    except BaseException:
        default_storage.delete(name)
        raise


# -- reading back -----------------------------------------------------------------------------------
def stored_image(detection: Detection) -> Image.Image:
    """The stored upload decoded exactly as the model saw it (EXIF applied, RGB)."""
    if not detection.has_image:
        raise ImageGone("The image of this detection was deleted by the retention policy.")
    try:
        with default_storage.open(detection.image.name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise ImageGone("The image of this detection is no longer stored.") from exc
    return decode_upload(data)


def thumbnail_bytes(detection: Detection) -> bytes:
    """The stored thumbnail, made from the stored image (and kept) the first time it is asked for."""
    if not detection.has_image:
        raise ImageGone("The image of this detection was deleted by the retention policy.")
    if detection.thumbnail:
        try:
            with default_storage.open(detection.thumbnail.name, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            pass  # made again below
    data = rendering.thumbnail_jpeg(stored_image(detection))
    folder = PurePath(detection.image.name).parent.relative_to("detections")
    name = default_storage.save(f"thumbnails/{folder}/{detection.pk.hex}.jpg", ContentFile(data))
    # Conditional: with two first requests at once, one name is kept and the other file removed.
    kept = Detection.objects.filter(pk=detection.pk, image_deleted_at__isnull=True, thumbnail=detection.thumbnail.name)
    if kept.update(thumbnail=name):
        detection.thumbnail.name = name
    else:
        default_storage.delete(name)
    return data


def annotated_png(detection: Detection, min_confidence: float = 0.0) -> bytes:
    boxes = rendering.visible_boxes(detection.boxes, min_confidence)
    return rendering.png_bytes(rendering.annotate(stored_image(detection), boxes))


def heatmap_png(detection: Detection, min_confidence: float = 0.0) -> bytes:
    boxes = rendering.visible_boxes(detection.boxes, min_confidence)
    return rendering.png_bytes(rendering.heatmap(stored_image(detection), boxes))


def image_jpeg(detection: Detection) -> bytes:
    return rendering.jpeg_bytes(stored_image(detection))


def guess_content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


# -- feedback ---------------------------------------------------------------------------------------
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
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
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


# -- retention --------------------------------------------------------------------------------------
def purge_old_images(days: int | None = None, *, batch_size: int = 500) -> int:
    """Delete stored uploads and thumbnails older than the retention period; the rows stay."""
    days = settings.PREDICTION_IMAGE_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    purged = 0
    while True:
        chunk = list(
            Detection.objects.filter(created_at__lt=cutoff, image_deleted_at__isnull=True)
            .exclude(image="")
            .values_list("pk", "image", "thumbnail")[:batch_size]
        )
        if not chunk:
            break
        for _pk, image, thumbnail in chunk:
            for name in (image, thumbnail):
                if name:
                    default_storage.delete(name)
        Detection.objects.filter(pk__in=[pk for pk, _, _ in chunk]).update(
            image_deleted_at=timezone.now(), image="", thumbnail=""
        )
        purged += len(chunk)
    logger.info("detection.images_purged count=%d older_than_days=%d", purged, days)
    return purged


# -- model info -------------------------------------------------------------------------------------
def model_info(model_name: str) -> dict:
    """What a client needs to call a model: production version and metrics, classes or features, input size."""
    from backend.registry.models import Deployment, ModelVersion, RegisteredModel

    model = RegisteredModel.objects.filter(name=model_name).first()
    if model is None:
        raise NotFound(f"There is no registered model named {model_name!r}.", code="model_not_found")
    version = model.versions.filter(status=ModelVersion.Status.PRODUCTION).first()
    production = None
    metadata = model.versions.order_by("-version").values_list("metadata", flat=True).first() or {}
    if version is not None:
        metadata = version.metadata or {}
        promotion = Deployment.objects.filter(model=model, to_version=version, succeeded=True).order_by("-id").first()
        production = {
            "version": version.version,
            "label": version.semantic_label,
            "metrics": version.metrics,
            "created_at": version.created_at.isoformat(),
            "promoted_at": promotion.created_at.isoformat() if promotion else None,
        }
    info = {
        "name": model.name,
        "kind": model.kind,
        "description": model.description,
        "production": production,
        "class_names": list(metadata.get("class_names") or model.class_names or []),
    }
    if model.kind == RegisteredModel.Kind.DETECTION:
        info["input_size"] = metadata.get("imgsz")
    else:
        schema = list(metadata.get("feature_schema") or model.feature_schema or [])
        info["feature_schema"] = schema
        info["n_features"] = len(schema)
    return info
