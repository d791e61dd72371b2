"""Default periodic tasks of the classification app (editable afterwards in the admin's *Periodic tasks*)."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "classification-purge-old-images",
        "task": "classification.purge_old_images",
        "crontab": {"minute": "25", "hour": "4"},
        "expires": 3600,
        "description": "Stored upload images past PREDICTION_IMAGE_RETENTION_DAYS are deleted; the rows stay.",
    },
    {
        "name": "classification-fill-missing-features",
        "task": "classification.fill_missing_features",
        "crontab": {"minute": "7-59/10"},
        "expires": 9 * 60,
        "description": "Image descriptors (for drift) of classifications whose web process died right after answering.",
    },
]


class Migration(migrations.Migration):
    dependencies = [
        ("classification", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
