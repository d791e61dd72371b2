"""Classification background work: batches of uploads, the retention of stored images and the upkeep of
the log."""

from celery import shared_task

from backend.classification.models import Classification
from backend.classification.services import batches
from backend.serving import uploads


@shared_task(name="classification.purge_old_images")
def purge_old_images() -> int:
    return uploads.purge_stored_images(Classification)


# Beat, every ten minutes: image descriptors of rows whose web process died right after answering.
@shared_task(name="classification.fill_missing_features")
def fill_missing_features() -> int:
    return uploads.fill_missing_features(Classification)


# No retry policy: per-image failures are recorded on the batch, a model that cannot serve fails
# the batch with its reason, and a worker lost mid-batch is redelivered (acks_late) and resumes.
@shared_task(name="classification.run_batch")
def run_batch(*, batch_id: str) -> dict:
    batch = batches.BATCHES.run(batch_id)
    return {"batch": str(batch.pk), "status": batch.status, "processed": batch.processed, "failed": batch.failed}


# Beat, every ten minutes: batches whose message was lost are sent again, stalled ones failed.
@shared_task(name="classification.reap_stale_batches")
def reap_stale_batches() -> dict:
    return batches.BATCHES.reap()
