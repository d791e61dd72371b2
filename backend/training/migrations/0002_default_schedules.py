"""Default periodic tasks of the training app (editable afterwards in the admin's *Periodic tasks*)."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "training-reap-stale-jobs",
        "task": "training.reap_stale_jobs",
        "crontab": {"minute": "*/5"},
        "expires": 4 * 60,
        "description": "A running training job whose worker died is marked failed (never stuck in running).",
    },
]


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
