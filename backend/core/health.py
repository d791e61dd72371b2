"""The state of the services the product depends on: database, Redis, MLflow store."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import redis
from django.conf import settings
from django.db import connection

from mlops.registry.health import check_store, scrub


@dataclass(frozen=True)
class ServiceState:
    ok: bool
    detail: str
    latency_ms: float


def _timed(check) -> ServiceState:
    started = time.perf_counter()
    try:
        ok, detail = check()
    except Exception as exc:  # noqa: BLE001  (a health check reports every failure as "down")
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    # /health is open to load balancers: no password of ours ever appears in what it says.
    detail = scrub(detail, settings.REDIS_URL, settings.MLFLOW_TRACKING_URI, _database_url())
    return ServiceState(ok, detail, round((time.perf_counter() - started) * 1000, 2))


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"db://{db.get('USER') or ''}:{db.get('PASSWORD') or ''}@host" if db.get("PASSWORD") else ""


def _database() -> tuple[bool, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return True, connection.vendor


def _redis() -> tuple[bool, str]:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping()), "ok"
    finally:
        client.close()


def service_states() -> dict[str, dict]:
    states = {
        "database": _timed(_database),
        "redis": _timed(_redis),
        "mlflow": _timed(lambda: check_store(settings.MLFLOW_TRACKING_URI)),
    }
    return {name: asdict(state) for name, state in states.items()}
