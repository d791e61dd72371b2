"""The "retrained version waits for review" rule and the training policies' schedule."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "alerting-run-training-policies",
        "task": "alerting.run_training_policies",
        "crontab": {"minute": "*/5"},
        "expires": 4 * 60,
        "description": "Training policies' schedule and feedback triggers (drift and alerts trigger them at once).",
    },
]


def install(apps, schema_editor):
    apps.get_model("alerting", "AlertRule").objects.get_or_create(
        name="retrained version waits for review",
        defaults={
            "kind": "review",
            "comparison": ">=",
            "threshold": 1,
            "window_minutes": 60,
            "cooldown_minutes": 0,
            "severity": "info",
            "description": "A training policy's new version did not beat production by the margin and was staged: "
            "compare it and promote it by hand, or leave it.",
            "builtin": True,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("alerting", "AlertRule").objects.filter(name="retrained version waits for review").delete()


class Migration(migrations.Migration):
    dependencies = [("alerting", "0005_training_policies")]

    operations = [migrations.RunPython(install, remove), schedules_operation(SCHEDULES)]
