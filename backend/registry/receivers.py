"""Reactions to registry changes: bump the serving generation, mirror aliases to MLflow."""

import logging

from django.dispatch import receiver

from backend.registry.serving import set_serving_generation
from backend.registry.signals import version_promoted, version_staged
from backend.registry.tasks import sync_model_aliases

logger = logging.getLogger(__name__)


@receiver(version_promoted, dispatch_uid="registry.bump_serving_generation")
def bump_serving_generation(sender, version, deployment, **kwargs):
    set_serving_generation(version.model.name, deployment.pk)


@receiver(version_promoted, dispatch_uid="registry.mirror_production_alias")
@receiver(version_staged, dispatch_uid="registry.mirror_staging_alias")
def mirror_aliases(sender, version, **kwargs):
    try:
        sync_model_aliases.delay(model_name=version.model.name)
    except Exception:
        logger.exception("registry.alias_sync_not_enqueued model=%s", version.model.name)
