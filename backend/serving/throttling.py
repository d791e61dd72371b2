"""The rate limits of the prediction endpoints: per client address for anonymous callers
(API_ANON_RATE), per user for signed-in ones (API_USER_RATE), shared by every web process
through the cache.

The client's address comes from backend.core.clients (forwarded headers count only from trusted
proxies, so a forged X-Forwarded-For is not a fresh identity). When the cache does not answer,
each process keeps its own counters at API_FALLBACK_RATE: a deliberate, smaller limit rather
than none, since nothing shared can be counted while the cache is down.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from backend.core.adapters.django import redis_client
from backend.core.clients import client_address

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """ "120/min" -> (120, 60), in DRF's rate syntax."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period[:1]]


class PredictionThrottle(BaseThrottle):
    """A fixed-window counter per caller: one atomic INCR (with its expiry) per request in the
    shared cache, the same count in every web process."""

    scope = "predictions"
    anon_rate_setting, user_rate_setting = "API_ANON_RATE", "API_USER_RATE"

    def allow_request(self, request, view) -> bool:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            identity, rate = f"user:{user.pk}", getattr(settings, self.user_rate_setting)
        else:
            identity, rate = f"anon:{client_address(request)}", getattr(settings, self.anon_rate_setting)
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        self.wait_seconds = (window + 1) * period - now
        key = f"throttle:{self.scope}:{identity}:{period}:{window}"
        try:
            count = _increment(key, period + 1)
        except Exception:  # noqa: BLE001  (a cache outage must not take the prediction API down with it)
            logger.warning("throttle.cache_unavailable key=%s: per-process fallback limit", key)
            return _fallback.allow(f"{self.scope}:{identity}", now)
        return count <= limit

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)


class ReadBackThrottle(PredictionThrottle):
    """Pictures read back (annotated, heatmap, image, thumbnail): API_READBACK_RATE for everyone."""

    scope = "readbacks"
    anon_rate_setting = user_rate_setting = "API_READBACK_RATE"


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


class _ProcessCounters:
    """The fallback while the cache is down: fixed windows counted in this process only."""

    def __init__(self):
        self._lock = threading.Lock()
        self._window = None
        self._counts: dict[str, int] = {}

    def allow(self, identity: str, now: float) -> bool:
        limit, period = parse_rate(settings.API_FALLBACK_RATE)
        window = (period, int(now // period))
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            self._counts[identity] = self._counts.get(identity, 0) + 1
            return self._counts[identity] <= limit


_fallback = _ProcessCounters()
