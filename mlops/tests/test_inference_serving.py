"""Hot swap under concurrent requests, with real ONNX tabular models standing for the versions."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from mlops.exceptions import MlopsError, ModelUnavailable
from mlops.inference.serving import ModelServer, ServedModel
from mlops.inference.tabular import TabularScorer
from mlops.tests.test_inference_tabular import train_breast_cancer

MODEL = "cancer"


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    return train_breast_cancer(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def record(tabular):
    return {name: float(value) for name, value in zip(tabular.names, tabular.features[0], strict=True)}


@dataclass
class FakeRegistry:
    """The production pointer and serving generation a web process would read from the database."""

    tabular: object
    production: int = 1
    generation: int = 1
    broken: set[int] = field(default_factory=set)
    load_delay_s: float = 0.0
    gate: threading.Event | None = None  # when set, loads wait for it
    history: list[tuple[float, int]] = field(default_factory=list)
    loads: list[int] = field(default_factory=list)
    loading_now: int = 0
    most_loads_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.history.append((time.monotonic(), self.production))

    def promote(self, version: int) -> None:
        with self.lock:
            self.production = version
            self.generation += 1
            self.history.append((time.monotonic(), version))

    def generation_of(self, name: str) -> int:
        return self.generation

    def load(self, name: str):
        """Load the production version: a real ONNX session whose class names carry the version."""
        with self.lock:
            version = self.production
            self.loading_now += 1
            self.most_loads_at_once = max(self.most_loads_at_once, self.loading_now)
            self.loads.append(version)
        try:
            time.sleep(self.load_delay_s)
            if self.gate is not None:
                self.gate.wait(10)
            if version in self.broken:
                raise MlopsError(
                    f"version {version} does not load", code="model_load_failed", details={"version": version}
                )
            names = [f"v{version}-malignant", f"v{version}-benign"]
            return version, TabularScorer(self.tabular.onnx, self.tabular.schema, names)
        finally:
            with self.lock:
                self.loading_now -= 1

    def was_production_during(self, version: int, start: float, end: float) -> bool:
        with self.lock:
            history = list(self.history)
        for index, (since, current) in enumerate(history):
            until = history[index + 1][0] if index + 1 < len(history) else float("inf")
            if current == version and since <= end and until >= start:
                return True
        return False


def test_concurrent_requests_during_repeated_promotions(tabular, record):
    registry = FakeRegistry(tabular, load_delay_s=0.03)
    failures: list = []
    server = ModelServer(registry.generation_of, registry.load, on_load_failure=lambda *args: failures.append(args))
    server.preload(MODEL)
    stop = threading.Event()
    answers: list[tuple[float, float, int]] = []
    errors: list[BaseException] = []

    def client() -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                served = server.get(MODEL)
                (prediction,) = served.predictor.predict([record])
                # The predictor is the version the server says it is: fully loaded, not half swapped.
                assert prediction.label.startswith(f"v{served.version}-")
            except BaseException as exc:  # noqa: BLE001  (collected and asserted on below)
                errors.append(exc)
                return
            answers.append((start, time.monotonic(), served.version))

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    for step in range(12):
        time.sleep(0.06)
        registry.promote(2 + step % 3)  # 2, 3, 4, 2, 3, 4...
    time.sleep(0.2)
    stop.set()
    for thread in clients:
        thread.join()

    assert not errors, errors[:3]
    assert not failures
    assert len(answers) > 100
    assert {version for _, _, version in answers} >= {1, 2, 3, 4}
    late = [answer for answer in answers if not registry.was_production_during(answer[2], answer[0], answer[1])]
    assert not late, f"{len(late)} answers came from a version that was not in production during the request"
    assert registry.most_loads_at_once == 1
    assert len(registry.loads) <= 1 + 12, "a generation was loaded more than once"
    assert server.get(MODEL).version == registry.production


def test_failed_load_keeps_the_old_version_and_backs_off(tabular, record):
    now = [1000.0]
    registry = FakeRegistry(tabular, broken={2})
    failures: list = []
    server = ModelServer(
        registry.generation_of,
        registry.load,
        on_load_failure=lambda name, version, error: failures.append((name, version, error)),
        retry_base_s=30,
        clock=lambda: now[0],
    )
    first = server.get(MODEL)
    assert first.version == 1
    registry.promote(2)
    for _ in range(20):
        served = server.get(MODEL)
        assert served is first
        assert served.predictor.predict([record])[0].label.startswith("v1-")
    assert registry.loads == [1, 2], "the broken generation was retried on every request"
    assert len(failures) == 1
    name, version, error = failures[0]
    assert (name, version) == (MODEL, 2) and "does not load" in str(error)
    assert server.status()[MODEL]["last_failure"] and server.status()[MODEL]["version"] == 1

    now[0] += 31  # after the back-off: one more attempt, which fails again and doubles the wait
    assert server.get(MODEL) is first
    assert registry.loads == [1, 2, 2] and len(failures) == 2
    now[0] += 31
    assert server.get(MODEL) is first
    assert registry.loads == [1, 2, 2]

    registry.broken.clear()
    registry.promote(3)  # a new generation is tried at once
    assert server.get(MODEL).version == 3


def test_nothing_loaded_is_model_unavailable(tabular):
    registry = FakeRegistry(tabular, broken={1})
    server = ModelServer(registry.generation_of, registry.load)
    with pytest.raises(ModelUnavailable) as raised:
        server.get(MODEL)
    assert raised.value.status == 503 and "failed to load" in raised.value.message
    assert "does not load" in raised.value.private  # the loader's own words: for operators, not in the message
    assert "does not load" not in raised.value.message
    with pytest.raises(ModelUnavailable):
        server.get(MODEL)
    assert registry.loads == [1]


def test_without_waiting_old_version_answers_while_the_new_one_loads(tabular, record):
    registry = FakeRegistry(tabular)
    server = ModelServer(registry.generation_of, registry.load, max_wait_s=0)
    old = server.get(MODEL)
    release = registry.gate = threading.Event()
    registry.promote(2)
    started = time.monotonic()
    during = [server.get(MODEL) for _ in range(50)]
    assert time.monotonic() - started < 1.0, "requests waited for the load"
    assert all(served is old for served in during)
    release.set()
    deadline = time.monotonic() + 10
    while server.get(MODEL).version != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    new = server.get(MODEL)
    assert new.version == 2 and new.generation == registry.generation
    # A request that still holds the old object finishes on it, untouched by the swap.
    assert old.version == 1 and old.predictor.predict([record])[0].label.startswith("v1-")
    assert registry.loads == [1, 2]


def test_one_load_at_a_time_per_model(tabular):
    registry = FakeRegistry(tabular, load_delay_s=0.3)
    server = ModelServer(registry.generation_of, registry.load)
    server.preload(MODEL)
    registry.promote(2)
    results: list[ServedModel] = []
    threads = [threading.Thread(target=lambda: results.append(server.get(MODEL))) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.loads == [1, 2]
    assert {served.version for served in results} == {2}, "requests that saw generation 2 wait for version 2"


def test_generation_lookup_failure(tabular):
    registry = FakeRegistry(tabular)
    healthy = [True]

    def generation(name):
        if not healthy[0]:
            raise ConnectionError("database is down")
        return registry.generation_of(name)

    server = ModelServer(generation, registry.load)
    loaded = server.get(MODEL)
    healthy[0] = False
    assert server.get(MODEL) is loaded
    with pytest.raises(ModelUnavailable):
        server.get("never-loaded")


def test_failure_hook_errors_do_not_break_serving(tabular):
    registry = FakeRegistry(tabular)
    server = ModelServer(registry.generation_of, registry.load, on_load_failure=lambda *a: 1 / 0)
    server.get(MODEL)
    registry.broken.add(2)
    registry.promote(2)
    assert server.get(MODEL).version == 1


def test_each_swap_is_reported_once_with_the_served_model(tabular):
    registry = FakeRegistry(tabular)
    loaded: list[ServedModel] = []
    server = ModelServer(registry.generation_of, registry.load, on_loaded=loaded.append)

    first = server.get(MODEL)
    assert server.get(MODEL) is first  # no new load, no new report
    registry.promote(2)
    second = server.get(MODEL)

    assert loaded == [first, second]
    assert [(served.version, served.generation) for served in loaded] == [(1, 1), (2, 2)]


def test_a_broken_loaded_hook_does_not_break_serving(tabular):
    registry = FakeRegistry(tabular)
    server = ModelServer(registry.generation_of, registry.load, on_loaded=lambda served: 1 / 0)
    assert server.get(MODEL).version == 1
    registry.promote(2)
    assert server.get(MODEL).version == 2
