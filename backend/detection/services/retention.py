"""Retention of stored uploads: the images go after PREDICTION_IMAGE_RETENTION_DAYS, the rows stay."""

from __future__ import annotations

from backend.detection.models import Detection
from backend.serving.uploads import purge_stored_images


def purge_old_images(days: int | None = None, *, batch_size: int = 500) -> int:
    """Delete stored uploads and thumbnails older than the retention period; the rows stay."""
    return purge_stored_images(Detection, days, batch_size=batch_size)
