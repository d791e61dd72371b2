"""Gunicorn settings, read from the working directory: `gunicorn -c gunicorn.conf.py backend.config.wsgi`
(scripts/start.sh web) is the whole web command, every knob from the environment.

One process with WEB_THREADS threads by default: ONNX Runtime spreads one prediction over every core,
so more processes only add memory (each holds its own models) unless the host has cores to spare.

The hooks keep the metric files of multiprocess mode (backend.core.metrics) in order: the master
imports the settings first, which puts PROMETHEUS_MULTIPROC_DIR into the environment the workers
inherit before anything imports prometheus_client.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings")


def _positive_int(name: str, default: int) -> int:
    """An integer setting of at least 1; anything else stops gunicorn with the variable's name."""
    raw = os.environ.get(name, "") or str(default)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"{name} must be a positive integer, not {raw!r}")
    return value


bind = [address.strip() for address in (os.environ.get("BIND") or "127.0.0.1:8000").split(",") if address.strip()]
workers = _positive_int("WEB_WORKERS", 1)
threads = _positive_int("WEB_THREADS", 8)
worker_class = "gthread"
# A request (a large upload on a slow line, a model loading) may take this long before its worker is restarted.
timeout = _positive_int("WEB_TIMEOUT", 120)
# Seconds an idle keep-alive connection stays open. Behind a load balancer that reuses connections,
# set it above the balancer's idle timeout, or a request sent as gunicorn closes the socket is reset.
keepalive = _positive_int("WEB_KEEPALIVE", 2)
# "-": the access log goes to standard output; a path writes it there; empty: no access log.
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None
# gunicorn's control socket has one path per user (~/.gunicorn/gunicorn.ctl): several web servers on
# one host would take it from each other, and nothing here uses it.
control_socket_disable = True


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
