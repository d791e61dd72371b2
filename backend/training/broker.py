"""What the broker and the workers know about training tasks, for the reaper.

Both lookups answer None when they cannot tell (broker down, a transport we cannot look into):
the reaper then acts on heartbeats alone and never fails a job on a guess.
"""

from __future__ import annotations

import json
import logging

from celery import current_app

from backend.core.adapters.kombu import redis_queue_keys

logger = logging.getLogger(__name__)

TRAINING_QUEUE = "training"
INSPECT_TIMEOUT_S = 2.0


def active_tasks_by_worker(timeout: float = INSPECT_TIMEOUT_S) -> dict[str, set[str]] | None:
    """{worker hostname: ids of the tasks it is running or holds}, for every worker that answers."""
    try:
        inspector = current_app.control.inspect(timeout=timeout)
        active = inspector.active()
        if active is None:
            # Nobody answered: no worker at all, or the broker is unreachable. Tell them apart.
            with current_app.connection_for_read() as connection:
                connection.ensure_connection(max_retries=1)
            return {}
        reserved = inspector.reserved() or {}
    except Exception as exc:  # noqa: BLE001  (kombu/redis raise many types when the broker is down)
        logger.warning("training.inspect_failed error=%s", exc)
        return None
    workers: dict[str, set[str]] = {}
    for source in (active, reserved):
        for hostname, tasks in source.items():
            workers.setdefault(hostname, set()).update(task.get("id", "") for task in tasks or [])
    return workers


def pending_task_ids(queue: str = TRAINING_QUEUE) -> set[str] | None:
    """Ids of the task messages still in the queue or delivered but unacknowledged (Redis only)."""
    try:
        with current_app.connection_for_read() as connection:
            channel = connection.default_channel
            client = getattr(channel, "client", None)
            if connection.transport_cls not in ("redis", "rediss") or client is None:
                return None
            ids: set[str] = set()
            for key in redis_queue_keys(channel, queue):
                ids.update(_task_id(raw) for raw in client.lrange(key, 0, -1))
            for raw in client.hvals(channel.unacked_key):
                payload = json.loads(raw)
                ids.add(_task_id(payload[0]) if isinstance(payload, list) and payload else "")
    except Exception as exc:  # noqa: BLE001  (kombu/redis raise many types when the broker is down)
        logger.warning("training.broker_peek_failed error=%s", exc)
        return None
    ids.discard("")
    return ids


def _task_id(message) -> str:
    if isinstance(message, bytes | str):
        try:
            message = json.loads(message)
        except ValueError:
            return ""
    if not isinstance(message, dict):
        return ""
    return str((message.get("headers") or {}).get("id") or (message.get("properties") or {}).get("correlation_id", ""))
