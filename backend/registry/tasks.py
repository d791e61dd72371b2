"""Registry background work: mirror aliases to MLflow, apply retention."""

import logging

from celery import shared_task
from django.conf import settings

from backend.registry import services
from backend.registry.models import RegisteredModel

logger = logging.getLogger(__name__)


# Retried with backoff: the MLflow store may be briefly unreachable; the database is the truth
# and the periodic reconcile_aliases catches up with anything that still slips through.
@shared_task(name="registry.sync_model_aliases", autoretry_for=(Exception,), retry_backoff=2, max_retries=8)
def sync_model_aliases(*, model_name: str) -> dict:
    return services.sync_aliases(model_name)


@shared_task(name="registry.reconcile_aliases")
def reconcile_aliases() -> dict:
    return {name: services.sync_aliases(name) for name in RegisteredModel.objects.values_list("name", flat=True)}


@shared_task(name="registry.cleanup_versions")
def cleanup_versions() -> list[str]:
    purged = []
    for model in RegisteredModel.objects.all():
        for version in services.versions_to_purge(model, keep_latest=settings.REGISTRY_KEEP_VERSIONS):
            services.purge_version_artifacts(version)
            purged.append(str(version))
    logger.info("registry.cleanup_done purged=%d", len(purged))
    return purged
