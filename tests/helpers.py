"""Small helpers for tests."""

import time

import pytest


def wait_until(predicate, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail the test with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
