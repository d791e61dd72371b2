"""The prediction endpoints' rate limits: who counts as one caller, signed-in limits, and what
happens when the shared counters (Redis) do not answer."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from rest_framework.test import APIClient

from tests.services import free_port

pytestmark = [pytest.mark.django_db(transaction=True)]  # the serving holder loads on its own connection

URL = "/api/v1/tabular/predictions/"


@pytest.fixture
def payload(serve_tabular):
    version = serve_tabular(0)
    return {"records": [{f["name"]: f["mean"] for f in version.model.feature_schema}]}


def fresh_address() -> str:
    number = uuid.uuid4().int
    return f"10.{number % 250}.{(number >> 8) % 250}.{(number >> 16) % 250}"


def statuses(client: APIClient, payload: dict, count: int, **headers) -> list[int]:
    return [client.post(URL, payload, format="json", **headers).status_code for _ in range(count)]


def test_a_forged_forwarded_for_is_not_a_new_caller(payload, settings):
    settings.API_ANON_RATE = "2/day"
    client = APIClient(REMOTE_ADDR=fresh_address())
    forged = [client.post(URL, payload, format="json", HTTP_X_FORWARDED_FOR=fresh_address()).status_code
              for _ in range(3)]  # fmt: skip
    assert forged == [200, 200, 429]


def test_behind_a_trusted_proxy_the_client_is_the_first_untrusted_hop(payload, settings):
    settings.API_ANON_RATE = "1/day"
    settings.API_TRUSTED_PROXIES = ["192.0.2.0/24"]
    proxy = APIClient(REMOTE_ADDR="192.0.2.10")
    alice, bob = fresh_address(), fresh_address()
    assert statuses(proxy, payload, 2, HTTP_X_FORWARDED_FOR=alice) == [200, 429]
    assert statuses(proxy, payload, 1, HTTP_X_FORWARDED_FOR=bob) == [200]
    # What alice writes to the left of the proxy's own entry is not believed.
    assert statuses(proxy, payload, 1, HTTP_X_FORWARDED_FOR=f"{fresh_address()}, {alice}") == [429]
    # Two proxies deep: the hops of trusted proxies are skipped.
    assert statuses(proxy, payload, 1, HTTP_X_FORWARDED_FOR=f"{bob}, 192.0.2.20") == [429]


def test_signed_in_users_have_their_own_higher_limit(payload, settings):
    settings.API_ANON_RATE, settings.API_USER_RATE = "1/day", "3/day"
    user = get_user_model().objects.create_user(f"u{uuid.uuid4().hex[:8]}", password="pw-user-12345")
    client = APIClient(REMOTE_ADDR=fresh_address())
    client.force_authenticate(user)
    assert statuses(client, payload, 4) == [200, 200, 200, 429]
    other = APIClient(REMOTE_ADDR=fresh_address())
    assert statuses(other, payload, 2) == [200, 429]


def test_without_redis_each_process_falls_back_to_its_own_limit(payload, settings):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }
    settings.API_ANON_RATE, settings.API_FALLBACK_RATE = "100/day", "2/day"
    caches["default"].close()
    client = APIClient(REMOTE_ADDR=fresh_address())
    assert statuses(client, payload, 3) == [200, 200, 429]
