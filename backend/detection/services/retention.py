"""Retention of stored uploads: the images go after PREDICTION_IMAGE_RETENTION_DAYS, the rows stay."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from backend.detection.models import Detection

logger = logging.getLogger(__name__)


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
