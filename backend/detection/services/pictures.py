"""The stored upload read back: as the model saw it, as a thumbnail, with its boxes drawn, as a heatmap."""

from __future__ import annotations

import mimetypes
from pathlib import PurePath

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from backend.detection.models import Detection
from backend.detection.services import rendering
from backend.detection.services.detect import decode_upload
from mlops.exceptions import MlopsError


class ImageGone(MlopsError):
    """The stored image was deleted by retention (the detection row is still there)."""

    code = "image_deleted"
    status = 410


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
