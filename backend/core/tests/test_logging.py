import logging

from celery.utils.log import LoggingProxy
from ultralytics.utils.tqdm import TQDM


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def run_epoch(logger_name: str) -> list[str]:
    """What a worker's log gets from one epoch: Ultralytics' bar redirected by Celery, then a result line."""
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.INFO)
    handler = Collect()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        stdout = LoggingProxy(logger, loglevel=logging.INFO)
        bar = TQDM(total=21, desc="       3/30   box_loss 3.47", file=stdout, mininterval=0.0, disable=False)
        for _ in range(21):
            bar.update(1)
        bar.close()
        stdout.write("\n")
        stdout.write("                   all         72        178      0.912      0.874      0.931      0.702\n")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return handler.messages


def test_redirected_progress_bars_keep_only_their_final_line():
    raw = run_epoch("tests.unfiltered")
    assert len(raw) > 21  # every redraw is a record without the filter
    kept = run_epoch("celery.redirected")  # the logger Celery redirects stdout to, filtered by settings.LOGGING
    assert len(kept) == 2, kept
    final, result = kept
    assert "21/21" in final and "100%" in final and "box_loss 3.47" in final
    assert "\r" not in final and "\x1b[K" not in final
    assert result.strip().startswith("all")
