"""The stored upload read back: as the model saw it, as a thumbnail, with its boxes drawn, as a heatmap."""

from __future__ import annotations

import logging
import mimetypes
from pathlib import PurePath

from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from backend.detection.models import Detection
from backend.detection.services import rendering
from backend.serving.uploads import decode_upload, thumbnail_jpeg
from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)


class ImageGone(MlopsError):
    """The stored image was deleted by retention (the detection row is still there)."""

    code = "image_deleted"
    status = 410


def stored_image(detection: Detection) -> Image.Image:
    """The stored upload decoded as the model saw it (EXIF applied, RGB), at its full size."""
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
    data = thumbnail_jpeg(stored_image(detection))
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
    def render() -> bytes:
        image, scale = _for_display(stored_image(detection))
        boxes = [_scaled(box, scale) for box in rendering.visible_boxes(detection.boxes, min_confidence)]
        return rendering.png_bytes(rendering.annotate(image, boxes))

    return _cached(detection, f"annotated:{min_confidence:.4f}", render)


def heatmap_png(detection: Detection, min_confidence: float = 0.0) -> bytes:
    def render() -> bytes:
        image, _ = _for_display(stored_image(detection))
        return rendering.png_bytes(rendering.heatmap(image, rendering.visible_boxes(detection.boxes, min_confidence)))

    return _cached(detection, f"heatmap:{min_confidence:.4f}", render)


def image_jpeg(detection: Detection) -> bytes:
    return _cached(detection, "image", lambda: rendering.jpeg_bytes(stored_image(detection)))


# Drawn pictures are for people to look at: at most this many pixels a side (the boxes in the
# JSON keep the original's coordinates). Each picture is kept in the cache for a while, so asking
# again costs a cache read, not a decode and an encode of the original.
DISPLAY_SIDE = 2048
RENDER_CACHE_SECONDS = 600


def _for_display(image: Image.Image) -> tuple[Image.Image, float]:
    scale = min(1.0, DISPLAY_SIDE / max(image.size))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), scale


def _scaled(box: dict, scale: float) -> dict:
    return box if scale == 1.0 else {**box, "xyxy": [value * scale for value in box["xyxy"]]}


def _cached(detection: Detection, what: str, render) -> bytes:
    """The picture from the cache, else rendered (ImageGone when the image is gone) and cached."""
    if not detection.has_image:
        raise ImageGone("The image of this detection was deleted by the retention policy.")
    key = f"readback:{detection.pk.hex}:{what}"
    try:
        data = cache.get(key)
    except Exception:  # noqa: BLE001  (without the cache, pictures are rendered each time)
        data = None
    if data is None:
        data = render()
        try:
            cache.set(key, data, RENDER_CACHE_SECONDS)
        except Exception:  # noqa: BLE001
            logger.warning("detection.readback_not_cached detection=%s", detection.pk)
    return data


def guess_content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
