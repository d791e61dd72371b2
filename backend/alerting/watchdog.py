"""The dead man's switch, watched from outside the monitor: a thread in each web process.

Beat runs the alert rules, so a dead beat (or no worker) cannot report itself. Every
ALERTS_WATCHDOG_SECONDS this thread evaluates the "monitor stopped" rules and delivers what is
due itself, without the queue (which may be what stopped). Several web processes doing the same
is harmless: evaluations of a rule are serialised on its row, and a delivery is claimed once.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connections

from backend.alerting.models import AlertRule
from backend.alerting.services import evaluation, outbox

logger = logging.getLogger(__name__)

_thread: threading.Thread | None = None
_stop = threading.Event()
_lock = threading.Lock()


def check_once() -> None:
    """One look: the monitor's rules, then every delivery that is due."""
    try:
        evaluation.evaluate_rules(kinds=[AlertRule.Kind.MONITOR_STOPPED])
    except Exception:  # the queue may be down: the alert's row is written, its delivery is done below
        logger.exception("alerting.watchdog_evaluation_failed")
    try:
        outbox.deliver_due()
    finally:
        connections.close_all()


def start(interval: float | None = None) -> threading.Thread | None:
    """Start the thread once per process (0 seconds: switched off)."""
    global _thread
    interval = settings.ALERTS_WATCHDOG_SECONDS if interval is None else interval
    if interval <= 0:
        return None
    with _lock:
        if _thread is not None and _thread.is_alive():
            return _thread
        _stop.clear()

        def run() -> None:
            while not _stop.wait(interval):
                try:
                    check_once()
                except Exception:  # a database hiccup must not end the watch
                    logger.exception("alerting.watchdog_failed")

        _thread = threading.Thread(target=run, name="alerting-watchdog", daemon=True)
        _thread.start()
        logger.info("alerting.watchdog_started interval=%s", interval)
        return _thread


def stop() -> None:
    global _thread
    with _lock:
        _stop.set()
        if _thread is not None:
            _thread.join(timeout=10)
            _thread = None
