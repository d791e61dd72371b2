"""Reactions to registry changes: every serving process sees a promotion through the generation."""

from django.dispatch import receiver

from backend.registry.signals import version_promoted
from backend.serving.generation import set_serving_generation


@receiver(version_promoted, dispatch_uid="serving.bump_serving_generation")
def bump_serving_generation(sender, version, deployment, **kwargs):
    set_serving_generation(version.model.name, deployment.pk)
