"""What every image-prediction app does with an upload the same way: the size cap, one decode under our
pixel and side caps, the name it is stored under, its thumbnail, and the upkeep of the stored files
(retention, and the descriptors of rows whose process died right after answering).

Detection and classification are siblings (neither imports the other), so the rules they share live
here, below both.
"""

from __future__ import annotations

import io
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models
from django.utils import timezone
from PIL import Image

from backend.core.mlops_config import mlops_config
from mlops.exceptions import InputTooLarge, MlopsError
from mlops.inference.features import image_features
from mlops.inference.images import decode_image, image_format

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 320


def check_upload_size(size: int | None) -> None:
    """413 file_too_large past DATA_UPLOAD_MAX_MEMORY_SIZE (None: the size is not known yet)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if size is not None and size > limit:
        raise InputTooLarge(
            f"The file is {size} bytes; the limit is {limit} bytes.",
            code="file_too_large",
            details={"size": size, "limit": limit},
        )


def decode_upload(data: bytes, *, fit: tuple[int, int] | None = None) -> Image.Image:
    """The upload decoded as the models see it (EXIF applied, 8-bit RGB), under MAX_IMAGE_PIXELS / MAX_IMAGE_SIDE.

    `fit` (height, width): a JPEG far larger is decoded at a reduced scale, never below what fits
    (images.decode_image); `images.source_size` gives the upload's size.
    """
    config = mlops_config()
    return decode_image(data, max_pixels=config.max_image_pixels, max_side=config.max_image_side, fit=fit)


def storage_name(folder: str, prediction_id: uuid.UUID, data: bytes) -> str:
    """Where an upload is stored: our name and a suffix from what its bytes are, never the client's."""
    day = timezone.now().strftime("%Y/%m/%d")
    return f"{folder}/{day}/{prediction_id.hex}.{image_format(data).lower()}"


def thumbnail_jpeg(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of the image, its longest side at most `side` pixels."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


# -- upkeep of a prediction log with stored uploads (fields image, thumbnail, image_deleted_at, features) -------
def purge_stored_images(log: type[models.Model], days: int | None = None, *, batch_size: int = 500) -> int:
    """Delete the stored uploads and thumbnails of `log` rows older than the retention period; the rows stay."""
    days = settings.PREDICTION_IMAGE_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    purged = 0
    while True:
        chunk = list(
            log.objects.filter(created_at__lt=cutoff, image_deleted_at__isnull=True)
            .exclude(image="")
            .values_list("pk", "image", "thumbnail")[:batch_size]
        )
        if not chunk:
            break
        for _pk, image, thumbnail in chunk:
            for name in (image, thumbnail):
                if name:
                    default_storage.delete(name)
        log.objects.filter(pk__in=[pk for pk, _, _ in chunk]).update(
            image_deleted_at=timezone.now(), image="", thumbnail=""
        )
        purged += len(chunk)
    logger.info("%s.images_purged count=%d older_than_days=%d", log._meta.model_name, purged, days)
    return purged


def fill_missing_features(log: type[models.Model], *, older_than_s: float = 60.0, limit: int = 500) -> int:
    """Descriptors for `log` rows whose process died between the answer and their `finish()`, read from
    the stored upload (kept for the retention period). Rows whose upload is gone are left as they are."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    filled = 0
    missing = log.objects.filter(features={}, created_at__lt=cutoff).exclude(image="").order_by("created_at")
    for row in missing[:limit]:
        try:
            with default_storage.open(row.image.name, "rb") as stored:
                image = decode_upload(stored.read())
        except (OSError, MlopsError) as exc:
            logger.warning("%s.features_unreadable id=%s reason=%s", log._meta.model_name, row.pk, exc)
            continue
        filled += log.objects.filter(pk=row.pk, features={}).update(features=image_features(image))
    return filled
