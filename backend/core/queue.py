"""Sending a Celery task by name: how a service starts work that the app's tasks module runs.

A service never imports its app's tasks (the tasks import the services), so it sends the task by
its registered name; CELERY_TASK_ROUTES picks the queue from that name. With
CELERY_TASK_ALWAYS_EAGER (debugging) the task runs here and now, as `apply_async` would; a task
asked for later (`countdown`) is then not run at all, and is left to whatever sweeps for it.
`expires` (seconds) lets a worker drop a message that waited longer than it is worth (a sample).
"""

from __future__ import annotations

from celery import current_app
from celery.result import AsyncResult

from mlops.exceptions import MlopsError


class QueueUnavailable(MlopsError):
    """The broker refused a task: the work was not started (what asked for it says so, and was not lost)."""

    code = "queue_unavailable"
    status = 503


def send_task(
    name: str,
    *,
    kwargs: dict,
    task_id: str | None = None,
    countdown: float | None = None,
    expires: float | None = None,
) -> AsyncResult | None:
    if current_app.conf.task_always_eager:
        if countdown:
            return None
        if name not in current_app.tasks:
            current_app.loader.import_default_modules()  # every app's tasks module (a worker does it at start)
        return current_app.tasks[name].apply(kwargs=kwargs, task_id=task_id)
    return current_app.send_task(name, kwargs=kwargs, task_id=task_id, countdown=countdown, expires=expires)
