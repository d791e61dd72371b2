"""Log filters for output written for a terminal and redirected into the log by Celery."""

from __future__ import annotations

import logging

REDRAW = ("\r", "\x1b[K")


class TerminalRedrawFilter(logging.Filter):
    """Keep a progress bar's finished line; drop its redraws and blank writes.

    Celery turns every write to stdout into a log record. Ultralytics' progress bars redraw their
    line many times a second ("\\r...\\x1b[K"): on a terminal that is one line, in a log it is
    hundreds per epoch. A training job's progress is on its page and in its row; the log keeps the
    bar's final state (100%), which carries the epoch's losses and validation metrics.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.strip():
            return False
        if not any(mark in message for mark in REDRAW):
            return True
        if "100%" not in message:
            return False
        for mark in REDRAW:
            message = message.replace(mark, "")
        record.msg, record.args = message.strip(), None
        return True
