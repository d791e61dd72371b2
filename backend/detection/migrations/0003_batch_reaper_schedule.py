"""The batch reaper's schedule (editable afterwards in the admin's *Periodic tasks*)."""

from django.db import migrations

from backend.core.beat import schedules_operation

SCHEDULES = [
    {
        "name": "detection-reap-stale-batches",
        "task": "detection.reap_stale_batches",
        "crontab": {"minute": "*/10"},
        "expires": 9 * 60,
        "description": "Batches whose message was lost are sent again; batches nothing will finish are failed.",
    },
]


class Migration(migrations.Migration):
    dependencies = [("detection", "0002_default_schedules")]

    operations = [schedules_operation(SCHEDULES)]
