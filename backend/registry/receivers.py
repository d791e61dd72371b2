"""Reactions to registry changes: mirror the production and staging aliases to MLflow."""

import logging

from django.dispatch import receiver

from backend.registry.signals import version_promoted, version_staged
from backend.registry.tasks import sync_model_aliases

logger = logging.getLogger(__name__)


@receiver(version_promoted, dispatch_uid="registry.mirror_production_alias")
@receiver(version_staged, dispatch_uid="registry.mirror_staging_alias")
def mirror_aliases(sender, version, **kwargs):
    try:
        sync_model_aliases.delay(model_name=version.model.name)
    except Exception:
        logger.exception("registry.alias_sync_not_enqueued model=%s", version.model.name)
