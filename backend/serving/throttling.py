"""The anonymous rate limit of the prediction endpoints: one counter per client address, shared
by every web process through the cache."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from backend.core.adapters.django import redis_client

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """ "120/min" -> (120, 60), in DRF's rate syntax."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period[:1]]


class AnonPredictionThrottle(BaseThrottle):
    """Anonymous callers of the prediction endpoints, limited to API_ANON_RATE per client address.

    A fixed-window counter in the shared cache: one atomic INCR (with its expiry) per request, the
    same count in every web process. Signed-in users are not throttled.
    """

    def allow_request(self, request, view) -> bool:
        if request.user and request.user.is_authenticated:
            return True
        limit, period = parse_rate(settings.API_ANON_RATE)
        now = time.time()
        window = int(now // period)
        self.wait_seconds = (window + 1) * period - now
        key = f"throttle:anon-predictions:{self.get_ident(request)}:{period}:{window}"
        try:
            count = _increment(key, period + 1)
        except Exception:  # noqa: BLE001  (a cache outage must not take the prediction API down with it)
            logger.warning("throttle.cache_unavailable key=%s", key)
            return True
        return count <= limit

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)


def _increment(key: str, timeout: int) -> int:
    """INCR and set the expiry in one round trip on Redis; add + incr on other cache backends."""
    name = cache.make_and_validate_key(key)
    client = redis_client(cache, name)
    if client is None:
        cache.add(key, 0, timeout)
        return cache.incr(key)
    pipe = client.pipeline(transaction=False)
    pipe.incr(name)
    pipe.expire(name, timeout, nx=True)
    return int(pipe.execute()[0])
