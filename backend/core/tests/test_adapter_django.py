"""The Django internals backend.core.adapters.django relies on: these fail the day Django changes them."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import request_finished
from django.db import close_old_connections
from django.http import HttpResponse

from backend.core.adapters.django import call_on_close, redis_client


def test_work_added_to_a_response_runs_when_it_is_closed_and_not_before():
    ran: list[str] = []
    response = HttpResponse(b"body")
    call_on_close(response, lambda: ran.append("work"))
    assert ran == []
    # Closing a response ends a request: Django would check the database connection an earlier test
    # left open, which this test may not touch. Django's test client disconnects the same way.
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)
    assert ran == ["work"]


def test_the_redis_client_behind_the_cache_writes_what_the_cache_reads():
    name = f"adapter-test:{uuid.uuid4().hex}"
    key = cache.make_and_validate_key(name)
    client = redis_client(cache, key)
    assert client is not None, "Django's RedisCache no longer exposes its redis-py client as _cache.get_client"
    assert client.incr(key) == 1
    assert client.incr(key) == 2
    assert cache.get(name) == 2  # the cache API reads back what the raw client wrote


def test_another_cache_backend_has_no_redis_client():
    assert redis_client(LocMemCache("adapter-test", {}), "any") is None
