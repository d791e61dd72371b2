"""Default periodic tasks of the registry app (editable afterwards in the admin's *Periodic tasks*)."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "registry-reconcile-aliases",
        "task": "registry.reconcile_aliases",
        "crontab": {"minute": "*/10"},
        "expires": 9 * 60,
        "description": "MLflow's aliases mirror the database; this catches up with any sync the broker lost.",
    },
    {
        "name": "registry-cleanup-versions",
        "task": "registry.cleanup_versions",
        "crontab": {"minute": "30", "hour": "3"},
        "expires": 3600,
        "description": "Retention: old versions' artifacts go; production and the version before it never do.",
    },
]


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
