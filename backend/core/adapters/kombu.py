"""kombu's Redis transport: the Redis lists that hold a queue's waiting messages.

kombu keeps one list per priority step (`priority_steps`, a documented transport option) and names
them with the private `Channel._q_for_pri`; no public API tells the names. Checked by
backend/core/tests/test_adapter_kombu.py on a real Redis channel.
"""

from __future__ import annotations


def redis_queue_keys(channel, queue: str) -> list[str]:
    """The Redis keys of `queue`'s lists on a kombu Redis `channel`, one per priority step."""
    return [channel._q_for_pri(queue, priority) for priority in channel.priority_steps]
