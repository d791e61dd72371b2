"""Default periodic tasks of the monitoring app (editable afterwards in the admin's *Periodic tasks*)."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "monitoring-check-drift",
        "task": "monitoring.check_drift_of_production_models",
        "crontab": {"minute": "5"},
        "expires": 50 * 60,
        "description": "Drift of every production model (hourly): its latest predictions against its reference.",
    },
    {
        "name": "monitoring-roll-up-performance",
        "task": "monitoring.roll_up_performance",
        "crontab": {"minute": "*"},
        "expires": 50,
        "description": "Requests, errors, latency, confidence and classes per version and minute (and hour).",
    },
]


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
