"""Start-up checks of the training set-up, as Django system checks (warnings with stable ids)."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def time_limits_below_visibility_timeout(app_configs=None, **kwargs):
    """Redis redelivers a task still running after the visibility timeout: a training would run twice."""
    visibility = (settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}).get("visibility_timeout", 3600)
    limits = {
        "CELERY_TASK_TIME_LIMIT": settings.CELERY_TASK_TIME_LIMIT,
        "CELERY_TASK_SOFT_TIME_LIMIT": settings.CELERY_TASK_SOFT_TIME_LIMIT,
    }
    return [
        Warning(
            f"{name} ({value}s) is not below the broker's visibility timeout ({visibility}s)",
            hint="Redis would deliver a long training again while it still runs; lower the limit or raise "
            "CELERY_VISIBILITY_TIMEOUT.",
            id="training.W001",
        )
        for name, value in limits.items()
        if value is None or value >= visibility
    ]
