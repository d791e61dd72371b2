"""Classification background work: the retention of stored images and the upkeep of the log."""

from celery import shared_task

from backend.classification.models import Classification
from backend.serving import uploads


@shared_task(name="classification.purge_old_images")
def purge_old_images() -> int:
    return uploads.purge_stored_images(Classification)


# Beat, every ten minutes: image descriptors of rows whose web process died right after answering.
@shared_task(name="classification.fill_missing_features")
def fill_missing_features() -> int:
    return uploads.fill_missing_features(Classification)
