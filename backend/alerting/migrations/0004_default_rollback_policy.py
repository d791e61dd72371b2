"""Automatic rollback on for every model by default, its alert rule, and the watches' sweep."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "alerting-check-watches",
        "task": "alerting.check_watches",
        "crontab": {"minute": "*"},
        "expires": 50,
        "description": "Promotions under watch that nobody looked at lately (each watch also looks every 10 s).",
    },
]


def install(apps, schema_editor):
    apps.get_model("alerting", "RollbackPolicy").objects.get_or_create(model=None)
    apps.get_model("alerting", "AlertRule").objects.get_or_create(
        name="version rolled back automatically",
        defaults={
            "kind": "auto_rollback",
            "comparison": ">=",
            "threshold": 1,
            "window_minutes": 60,
            "cooldown_minutes": 0,
            "severity": "critical",
            "description": "A promotion failed more or answered slower than the version it replaced, and was "
            "rolled back by itself: look at why before promoting it again.",
            "builtin": True,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("alerting", "RollbackPolicy").objects.filter(model=None).delete()
    apps.get_model("alerting", "AlertRule").objects.filter(name="version rolled back automatically").delete()


class Migration(migrations.Migration):
    dependencies = [("alerting", "0003_rollback_policies_and_watches")]

    operations = [migrations.RunPython(install, remove), schedules_operation(SCHEDULES)]
