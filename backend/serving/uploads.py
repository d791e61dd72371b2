"""What every image-prediction app does with an upload the same way: the size cap, one decode under our
pixel and side caps, the name it is stored under, and its thumbnail.

Detection and classification are siblings (neither imports the other), so the rules they share live
here, below both.
"""

from __future__ import annotations

import io
import uuid

from django.conf import settings
from django.utils import timezone
from PIL import Image

from backend.core.mlops_config import mlops_config
from mlops.exceptions import InputTooLarge
from mlops.inference.images import decode_image, image_format

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


def decode_upload(data: bytes) -> Image.Image:
    """The upload decoded as the models see it (EXIF applied, 8-bit RGB), under MAX_IMAGE_PIXELS / MAX_IMAGE_SIDE."""
    config = mlops_config()
    return decode_image(data, max_pixels=config.max_image_pixels, max_side=config.max_image_side)


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
