"""The Celery app: settings come from Django's (the CELERY_ block), tasks from each app.

Periodic tasks are rows of django-celery-beat's tables, installed by each app's data migration
(backend.core.beat) and edited in the admin: the app carries no beat_schedule that would overwrite
them whenever beat starts.
"""

import os

from celery import Celery
from celery.signals import worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings")

app = Celery("backend")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_shutdown.connect
def pool_process_exited(pid, **kwargs):
    """A pool process exits: its live gauges stop counting (its counters stay in the totals)."""
    from backend.core.metrics import process_exited  # the app is loaded by then; not before Django

    process_exited(pid)
