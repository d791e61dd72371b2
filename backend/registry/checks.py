"""Start-up checks of the registry: visible in `manage.py check` and at server start."""

from django.core.checks import Warning, register
from django.db import DatabaseError

from backend.registry.models import RegisteredModel


@register()
def models_without_production_version(app_configs, **kwargs):
    try:
        names = list(RegisteredModel.objects.exclude(versions__status="production").values_list("name", flat=True))
    except DatabaseError:
        return []  # not migrated yet: `migrate` itself runs the checks
    return [
        Warning(
            f"Model {name!r} has no production version: its predictions answer 503 until one is promoted.",
            hint="Promote a version in the admin or with `manage.py promote NAME VERSION`.",
            id="registry.W001",
        )
        for name in names
    ]
