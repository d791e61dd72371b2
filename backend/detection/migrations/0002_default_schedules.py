"""Default periodic tasks of the detection app (editable afterwards in the admin's *Periodic tasks*)."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "detection-purge-old-images",
        "task": "detection.purge_old_images",
        "crontab": {"minute": "15", "hour": "4"},
        "expires": 3600,
        "description": "Stored upload images past PREDICTION_IMAGE_RETENTION_DAYS are deleted; the rows stay.",
    },
]


class Migration(migrations.Migration):
    dependencies = [
        ("detection", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
