"""Serving's background work: keep the cached serving generations true to the database."""

from celery import shared_task

from backend.serving.generation import reconcile_generations


# Beat, every minute: idempotent; a lost run is made good by the next.
@shared_task(name="serving.reconcile_generations")
def reconcile_generations_task() -> dict:
    return reconcile_generations()
