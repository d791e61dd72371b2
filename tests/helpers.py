"""Small helpers for tests."""

import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families


def wait_until(predicate, timeout: float = 60, interval: float = 0.2, what: str = "condition", details=None):
    """Poll `predicate` until it returns a truthy value; fail the test with `what` after `timeout`
    (and what `details()` returns then, e.g. the logs of the processes waited for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}" + (f"\n{details()}" if details else ""))


class Scrape:
    """One GET /metrics through a test client, parsed by prometheus_client's own parser."""

    def __init__(self, client):
        response = client.get("/metrics")
        assert response.status_code == 200, response.content[:500]
        self.text = response.content.decode()
        self.families = list(text_string_to_metric_families(self.text))
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in self.families
            for sample in family.samples
        }

    def value(self, name: str, **labels) -> float:
        """The sample's value; 0 when the series does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def series(self, name: str) -> list[dict]:
        """The labels of every sample called `name`."""
        return [dict(labels) for sample_name, labels in self.samples if sample_name == name]


def post_records(records) -> None:
    """Score a DataFrame of records through the tabular prediction API, as a client does."""
    from rest_framework.test import APIClient

    payload = {"records": records.to_dict(orient="records")}
    response = APIClient().post("/api/v1/tabular/predictions/", payload, format="json")
    assert response.status_code == 200, response.content


def stream_from(data, n: int, seed: int):
    """n records drawn from the table with a little noise: the production traffic of an unchanged world."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = data.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    return rows * rng.normal(1.0, 0.01, size=rows.shape)


def wait_for_celery_worker(process: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    """Until a Celery worker of this app answers a ping; its log's tail when it exits or stays silent."""
    from backend import celery_app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()[-4000:]}")
        if celery_app.control.ping(timeout=0.5):
            return
        time.sleep(0.5)
    raise RuntimeError(f"celery worker did not answer within {timeout}s:\n{log_path.read_text()[-4000:]}")
