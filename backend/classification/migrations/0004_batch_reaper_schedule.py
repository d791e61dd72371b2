"""The classification batch reaper's schedule (editable afterwards in the admin's *Periodic tasks*)."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "classification-reap-stale-batches",
        "task": "classification.reap_stale_batches",
        "crontab": {"minute": "3-59/10"},
        "expires": 9 * 60,
        "description": "Classification batches whose message was lost are sent again; batches nothing will finish "
        "are failed.",
    },
]


class Migration(migrations.Migration):
    dependencies = [("classification", "0003_classification_batches")]

    operations = [schedules_operation(SCHEDULES)]
