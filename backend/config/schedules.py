"""Every periodic task, in one place. django-celery-beat copies these into its tables at start-up
(editable in the admin afterwards). Each entry expires so a backlog never runs stale work."""

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # MLflow's aliases mirror the database; this catches up with any sync the broker lost.
    "registry-reconcile-aliases": {
        "task": "registry.reconcile_aliases",
        "schedule": crontab(minute="*/10"),
        "options": {"expires": 9 * 60},
    },
    # Retention: old versions' artifacts go; production and the version before it never do.
    "registry-cleanup-versions": {
        "task": "registry.cleanup_versions",
        "schedule": crontab(minute=30, hour=3),
        "options": {"expires": 3600},
    },
}
