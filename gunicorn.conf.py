"""Gunicorn settings, read from the working directory (the Procfile's `web` line starts there).

The hooks keep the metric files of multiprocess mode (backend.core.metrics) in order: the master
imports the settings first, which puts PROMETHEUS_MULTIPROC_DIR into the environment the workers
inherit before anything imports prometheus_client.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings")


def on_starting(server):
    """Before the first worker forks: drop the metric files of processes that have exited."""
    import django.conf

    django.conf.settings.PROMETHEUS_MULTIPROC_DIR  # noqa: B018  (loads the settings: see the docstring)
    from backend.core.metrics import remove_files_of_exited_processes

    removed = remove_files_of_exited_processes()
    server.log.info("metrics: removed %d files of exited processes", len(removed))


def post_worker_init(worker):
    """Each web worker loads the production models as soon as it has imported the application, and
    watches the monitor."""
    from backend.alerting import watchdog
    from backend.serving.loading import preload_default_models

    preload_default_models()
    watchdog.start()  # the dead man's switch: beat and the workers cannot report their own death


def child_exit(server, worker):
    """A worker exited: its live gauges (the serving generation) stop counting."""
    from backend.core.metrics import process_exited

    process_exited(worker.pid)
