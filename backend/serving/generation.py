"""The serving generation: a per-model counter every serving process checks on each request.

It is the id of the model's latest successful Deployment, kept in the cache so the check costs a
Redis GET; on a cache miss (or with Redis down) it is read from the database, which is the truth.
"""

from __future__ import annotations

import logging

from django.core.cache import cache

from backend.core.adapters.django import redis_client
from backend.registry.models import Deployment

logger = logging.getLogger(__name__)


def _key(model_name: str) -> str:
    return f"serving-generation:{model_name}"


def generation_from_database(model_name: str) -> int:
    latest = (
        Deployment.objects.filter(model__name=model_name, succeeded=True).order_by("-id").values_list("id", flat=True)
    )
    return latest.first() or 0


def serving_generation(model_name: str) -> int:
    try:
        value = cache.get(_key(model_name))
    except Exception:  # noqa: BLE001  (the cache is an accelerator; the database answers without it)
        logger.warning("serving.generation_cache_unavailable model=%s", model_name)
        return generation_from_database(model_name)
    if value is None:
        value = generation_from_database(model_name)
        try:
            # add, not set: a promotion that committed meanwhile has already stored a newer value,
            # which this (possibly stale) read must not overwrite.
            if not cache.add(_key(model_name), int(value), timeout=None):
                value = cache.get(_key(model_name), value)
        except Exception:  # noqa: BLE001  (the database value stands when the cache is down)
            logger.warning("serving.generation_not_cached model=%s", model_name)
    return int(value)


# Raise the stored generation, never lower it: two promotions committing close together may announce
# themselves out of order, and the older one must not put its (lower) deployment id back.
_RAISE = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def set_serving_generation(model_name: str, generation: int) -> None:
    """Store `generation` unless a higher one is already there (a later promotion got in first)."""
    try:
        key = cache.make_and_validate_key(_key(model_name))
        client = redis_client(cache, key)
        if client is not None:
            client.eval(_RAISE, 1, key, int(generation))
        elif int(cache.get(_key(model_name), 0)) < int(generation):  # another backend: not atomic
            cache.set(_key(model_name), int(generation), timeout=None)
    except Exception:  # noqa: BLE001  (serving falls back to the database when the cache is down)
        logger.warning("serving.generation_not_cached model=%s generation=%s", model_name, generation)


def _reset_serving_generation(model_name: str, generation: int) -> None:
    try:
        cache.set(_key(model_name), int(generation), timeout=None)
    except Exception:  # noqa: BLE001
        logger.warning("serving.generation_not_cached model=%s generation=%s", model_name, generation)


def reconcile_generations() -> dict[str, dict]:
    """Repair the cached generation of every model from the database (beat, every minute).

    Below the database: a write that failed when a version was promoted would leave warm processes on
    the old version. Above it: the database was restored from a backup taken before later
    promotions; new deployment ids would stay below the cached value and never be seen, so it is
    put back to the database's (read again first, so that a promotion committing meanwhile wins).
    """
    repaired = {}
    names = Deployment.objects.filter(succeeded=True).values_list("model__name", flat=True).distinct()
    for name in names:
        truth = generation_from_database(name)
        try:
            cached = cache.get(_key(name))
        except Exception:  # noqa: BLE001  (nothing to repair while the cache is down; requests read the database)
            logger.warning("serving.generation_cache_unavailable model=%s", name)
            return repaired
        if cached is None or int(cached) == truth:
            continue
        if int(cached) < truth:
            set_serving_generation(name, truth)
        elif (truth := generation_from_database(name)) < int(cached):
            _reset_serving_generation(name, truth)
        else:
            continue  # a promotion committed between the two reads: the cache is right
        now = int(cache.get(_key(name), truth))
        repaired[name] = {"was": int(cached), "now": now}
        logger.warning("serving.generation_repaired model=%s was=%s now=%s", name, cached, now)
    return repaired
