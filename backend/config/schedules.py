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
    # A running training job whose worker died is marked failed (never stuck in "running").
    "training-reap-stale-jobs": {
        "task": "training.reap_stale_jobs",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 4 * 60},
    },
    # Stored upload images past PREDICTION_IMAGE_RETENTION_DAYS are deleted; the rows stay.
    "detection-purge-old-images": {
        "task": "detection.purge_old_images",
        "schedule": crontab(minute=15, hour=4),
        "options": {"expires": 3600},
    },
}
