"""Work that runs once the answer has been sent."""

import logging
from collections.abc import Callable

from django.http import HttpResponseBase

from backend.core.adapters.django import call_on_close

logger = logging.getLogger(__name__)


def after_response(response: HttpResponseBase, work: Callable[[], None], *, what: str) -> HttpResponseBase:
    """Run `work` when the server closes the response, i.e. after the body went out.

    Django runs a response's resource closers in `close()` (the WSGI server calls it once the
    body is written; the test client calls it too) and swallows their exceptions, so failures are
    logged here with `what` naming the work.
    """

    def run() -> None:
        try:
            work()
        except Exception:
            logger.exception("response.after_work_failed what=%s", what)

    call_on_close(response, run)
    return response
