"""The built-in alert rules, a log channel, and the alerting schedules (all editable in the admin)."""

from django.db import migrations

from backend.core.beat import schedules_operation

# name, kind, comparison, threshold, window, for, cooldown (minutes), min_samples, severity, description
RULES = [
    ("drift detected", "drift", ">=", 1, 180, 0, 60, 0, "warning",
     "The latest drift check of the production version (within three hours) flagged drift."),
    ("latency p95 above target", "latency_p95", ">", 1000, 10, 5, 30, 20, "warning",
     "95th percentile of server time per request above 1 s for five minutes."),
    ("error rate above target", "error_rate", ">", 0.05, 10, 2, 30, 20, "critical",
     "More than 5% of requests (rejected uploads and failed predictions) failed over ten minutes."),
    ("average confidence collapse", "confidence", "<", 0.25, 30, 10, 60, 50, "warning",
     "The average confidence of the answers fell below 0.25: the model no longer recognises its inputs."),
    ("accuracy drop from feedback", "accuracy", "<", 0.7, 1440, 0, 360, 20, "warning",
     "Fewer than 70% of the feedback verdicts of the last day said the answer was correct."),
    ("training job failed", "training_failed", ">=", 1, 60, 0, 0, 0, "warning",
     "A training job of the model failed within the last hour."),
    ("model failed to load", "load_failed", ">=", 1, 10, 0, 0, 0, "critical",
     "The production version failed to load in a serving process: requests get 503."),
    ("disk space low", "disk_free", "<", 10, 10, 0, 60, 0, "critical",
     "Less than 10% of the disk under var/ or the media folder is free."),
    ("monitor stopped", "monitor_stopped", ">", 10, 10, 0, 0, 0, "critical",
     "Beat has not sent, or no worker has finished, the minute's performance roll-up for ten minutes."),
]  # fmt: skip

SCHEDULES = [
    {
        "name": "alerting-evaluate-rules",
        "task": "alerting.evaluate_rules",
        "crontab": {"minute": "*"},
        "expires": 50,
        "description": "Every enabled alert rule against its metric; opens, updates and resolves alerts.",
    },
    {
        "name": "alerting-deliver-due-notifications",
        "task": "alerting.deliver_due_notifications",
        "crontab": {"minute": "*"},
        "expires": 50,
        "description": "Notifications whose retry is due, or whose worker died while sending them.",
    },
]


def install(apps, schema_editor):
    rule_model = apps.get_model("alerting", "AlertRule")
    for name, kind, comparison, threshold, window, for_, cooldown, min_samples, severity, description in RULES:
        rule_model.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "comparison": comparison,
                "threshold": threshold,
                "window_minutes": window,
                "for_minutes": for_,
                "cooldown_minutes": cooldown,
                "min_samples": min_samples,
                "severity": severity,
                "description": description,
                "builtin": True,
            },
        )
    apps.get_model("alerting", "Channel").objects.get_or_create(
        name="log", defaults={"kind": "log", "config": {}, "alerts": True}
    )


def remove(apps, schema_editor):
    apps.get_model("alerting", "AlertRule").objects.filter(builtin=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("alerting", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, remove), schedules_operation(SCHEDULES)]
