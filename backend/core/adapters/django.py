"""Django internals the product relies on where Django has no public API.

- `HttpResponseBase._resource_closers`: the callables `close()` runs once the server has sent the
  body. It is how work is run after the answer went out without a thread of our own.
- `RedisCache._cache.get_client()`: the redis-py client behind Django's Redis cache, for the
  one-round-trip INCR + EXPIRE of the rate limiter (the cache API needs two).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpResponseBase


def call_on_close(response: HttpResponseBase, work: Callable[[], None]) -> None:
    """Run `work` in `response.close()`, after the body went out (Django swallows its exceptions)."""
    response._resource_closers.append(work)


def redis_client(cache, key: str):
    """The redis-py client that holds `key` (already made with cache.make_key) for writing, or None
    when `cache` is not Django's Redis cache."""
    client_of = getattr(getattr(cache, "_cache", None), "get_client", None)
    return client_of(key, write=True) if client_of is not None else None
