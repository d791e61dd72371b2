"""The serving generations' reconciler schedule (editable afterwards in the admin's *Periodic tasks*)."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "serving-reconcile-generations",
        "task": "serving.reconcile_generations",
        "crontab": {"minute": "*"},
        "expires": 50,
        "description": "Cached serving generations repaired from the deployments (a failed cache write at a "
        "promotion would leave warm processes on the old version).",
    },
]


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_default_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
