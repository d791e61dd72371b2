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


# Every 10 minutes (beat). One model the store refuses does not stop the others: its error is the
# model's entry in the result, and the next run tries it again.
@shared_task(name="registry.reconcile_aliases")
def reconcile_aliases() -> dict:
    return _each_model(services.sync_aliases, "registry.reconcile_failed")


# Nightly (beat): retention, model by model, past any one that fails.
@shared_task(name="registry.cleanup_versions")
def cleanup_versions() -> dict:
    def purge(name: str) -> list[str]:
        model = RegisteredModel.objects.get(name=name)
        versions = services.versions_to_purge(model, keep_latest=settings.REGISTRY_KEEP_VERSIONS)
        for version in versions:
            services.purge_version_artifacts(version)
        return [str(version) for version in versions]

    result = _each_model(purge, "registry.cleanup_failed")
    logger.info("registry.cleanup_done models=%d", len(result))
    return result


def _each_model(work, event: str) -> dict:
    result = {}
    for name in RegisteredModel.objects.order_by("name").values_list("name", flat=True):
        try:
            result[name] = work(name)
        except Exception as exc:  # recorded per model; the others still run
            logger.exception("%s model=%s", event, name)
            result[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    return result
