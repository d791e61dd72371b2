"""Default periodic tasks, installed by each app's data migration into django-celery-beat's tables.

Beat reads its schedule from the database only (CELERY_BEAT_SCHEDULER), so what an admin edits in
*Periodic tasks* stays edited: no schedule in the Celery config overwrites it at the next start.
Every entry is a crontab (an interval restarts with beat) with an expiry, so a backlog never runs
stale work.
"""

from __future__ import annotations

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def schedules_operation(entries: list[dict]) -> migrations.RunPython:
    """The data-migration operation that installs `entries` (and removes them when migrated backwards)."""
    return migrations.RunPython(
        lambda apps, schema_editor: install_schedules(apps, entries),
        lambda apps, schema_editor: remove_schedules(apps, entries),
    )


def install_schedules(apps, entries: list[dict]) -> None:
    """Create or update the named entries: {name, task, crontab: {minute, hour...}, expires, description}."""
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for entry in entries:
        fields = {"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
        fields.update(entry["crontab"])
        crontab, _ = crontab_model.objects.get_or_create(timezone=settings.TIME_ZONE, **fields)
        task_model.objects.update_or_create(
            name=entry["name"],
            defaults={
                "task": entry["task"],
                "crontab": crontab,
                "interval": None,
                "kwargs": "{}",
                "expire_seconds": entry["expires"],
                "description": entry["description"],
                "enabled": True,
            },
        )
    _tell_beat(apps)


def remove_schedules(apps, entries: list[dict]) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[e["name"] for e in entries]).delete()
    _tell_beat(apps)


def _tell_beat(apps) -> None:
    """A running beat reloads its schedule when this timestamp moves (the model's own signals do not run here)."""
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )
