"""The schedule of the sweep that completes prediction rows (editable afterwards in the admin's *Periodic tasks*)."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "detection-fill-missing-features",
        "task": "detection.fill_missing_features",
        "crontab": {"minute": "5-59/10"},
        "expires": 9 * 60,
        "description": "Image descriptors (for drift) of detections whose web process died right after answering.",
    },
]


class Migration(migrations.Migration):
    dependencies = [("detection", "0004_feedback_trusted")]

    operations = [schedules_operation(SCHEDULES)]
