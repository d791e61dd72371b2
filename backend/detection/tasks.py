"""Detection background work: batches of uploads, the retention of stored images, and the upkeep of the log."""

import logging

from celery import shared_task

from backend.detection.services import batches, detect, retention

logger = logging.getLogger(__name__)


# No retry policy: per-image failures are recorded on the batch, a model that cannot serve fails
# the batch with its reason, and a worker lost mid-batch is redelivered (acks_late) and resumes.
@shared_task(name="detection.run_batch")
def run_batch(*, batch_id: str) -> dict:
    batch = batches.run_batch(batch_id)
    return {"batch": str(batch.pk), "status": batch.status, "processed": batch.processed, "failed": batch.failed}


@shared_task(name="detection.purge_old_images")
def purge_old_images() -> int:
    return retention.purge_old_images()


# Beat, every ten minutes: batches whose message was lost are sent again, stalled ones failed.
@shared_task(name="detection.reap_stale_batches")
def reap_stale_batches() -> dict:
    return batches.reap_stale_batches()


# Beat, every ten minutes: image descriptors of rows whose web process died right after answering.
@shared_task(name="detection.fill_missing_features")
def fill_missing_features() -> int:
    return detect.fill_missing_features()
