"""The kombu adapter on a real Redis channel (the test Redis): it fails the day kombu renames or
changes the private lookup the adapter wraps."""

import json
import uuid

from django.conf import settings
from kombu import Connection, Producer, Queue

from backend.core.adapters import kombu as kombu_adapter


def test_the_private_queue_lookup_is_still_there():
    with Connection(settings.CELERY_BROKER_URL) as connection:
        channel = connection.default_channel
        assert callable(getattr(channel, "_q_for_pri", None))
        assert list(channel.priority_steps)


def test_queue_keys_hold_the_messages_sent_to_the_queue():
    """One message per priority extreme: each lands in one of the lists the adapter names."""
    name = f"adapter-probe-{uuid.uuid4().hex[:8]}"
    with Connection(settings.CELERY_BROKER_URL) as connection:
        channel = connection.default_channel
        queue = Queue(name, routing_key=name)
        producer = Producer(channel)
        try:
            for label, priority in (("low", 0), ("high", 9)):
                producer.publish(
                    {"n": 1}, routing_key=name, declare=[queue], priority=priority, headers={"probe": label}
                )
            keys = kombu_adapter.redis_queue_keys(channel, name)
            held = {
                key: [json.loads(raw)["headers"]["probe"] for raw in channel.client.lrange(key, 0, -1)] for key in keys
            }
            assert sorted(label for labels in held.values() for label in labels) == ["high", "low"]
            assert all(len(labels) <= 1 for labels in held.values())  # two priorities, two lists
            empty = kombu_adapter.redis_queue_keys(channel, f"{name}-empty")
            assert not any(channel.client.llen(key) for key in empty)
        finally:
            queue(channel).delete()
