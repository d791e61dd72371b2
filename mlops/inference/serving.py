"""Per-process hot swap: keep each model's production version loaded and swap it without dropping a request.

Each request asks `ModelServer.get(name)`. A cheap `generation_fn(name)` (the serving generation,
bumped when a version is promoted or rolled back) tells whether the loaded version is still the one
to serve. When it changed, one background thread per model loads the new version beside the old one
and swaps the reference atomically; requests keep the `ServedModel` they got, so requests in flight
finish on the version they started with.

A request that itself saw the new generation waits up to `max_wait_s` for the new version (so its
answer comes from a version that was in production while it ran); with `max_wait_s=0` it gets the
old version at once. Requests that saw the old generation never wait. A failed load keeps the old
version serving, is logged, reported through `on_load_failure`, and retried for the same
generation only after a back-off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops.exceptions import MlopsError, ModelUnavailable

logger = logging.getLogger(__name__)

Generation = Hashable
LoaderFn = Callable[[str], tuple[Any, Any]]
FailureFn = Callable[[str, Any, BaseException], None]
LoadedFn = Callable[["ServedModel"], None]


@dataclass(frozen=True)
class ServedModel:
    """A loaded version as handed to one request; never mutated, so a swap cannot change it under the request."""

    name: str
    version: Any
    predictor: Any
    loaded_at: datetime
    generation: Generation = None


@dataclass
class _Load:
    generation: Generation
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Failure:
    generation: Generation
    attempts: int
    retry_at: float
    error: str


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    served: ServedModel | None = None
    loading: _Load | None = None
    failure: _Failure | None = None


def failed_version(error: BaseException) -> Any:
    """The version a failed load was about, when the loader said so (`error.version` or details["version"])."""
    version = getattr(error, "version", None)
    if version is None and isinstance(error, MlopsError):
        version = error.details.get("version")
    return version


class ModelServer:
    """Holds the served version of each model in one process and hot-swaps it when the generation changes.

    `loader_fn(name) -> (version, predictor)` loads whatever is in production now; to name the version
    in a failure report, raise an error with a `version` attribute or `details["version"]`.
    """

    def __init__(
        self,
        generation_fn: Callable[[str], Generation],
        loader_fn: LoaderFn,
        *,
        on_load_failure: FailureFn | None = None,
        on_loaded: LoadedFn | None = None,
        max_wait_s: float = 10.0,
        first_load_timeout_s: float = 120.0,
        retry_base_s: float = 5.0,
        retry_max_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._generation_fn = generation_fn
        self._loader_fn = loader_fn
        self._on_load_failure = on_load_failure
        self._on_loaded = on_loaded
        self.max_wait_s = max_wait_s
        self.first_load_timeout_s = first_load_timeout_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()

    # -- the request path ---------------------------------------------------------------------

    def get(self, name: str) -> ServedModel:
        """The version to answer this request with; ModelUnavailable when none could ever be loaded."""
        slot = self._slot(name)
        served = slot.served
        try:
            generation = self._generation_fn(name)
        except Exception as exc:  # a store hiccup must not fail requests a loaded model can answer
            if served is not None:
                logger.warning("serving.generation_unknown model=%s error=%r serving=%s", name, exc, served.version)
                return served
            raise ModelUnavailable(
                f"Model {name!r} is not available: its serving state cannot be read.",
                details={"model": name},
                private=f"{type(exc).__name__}: {exc}",
            ) from exc
        if served is not None and served.generation == generation:
            return served  # the common case: no lock, no wait
        timeout = self.max_wait_s if served is not None else self.first_load_timeout_s
        deadline = self._clock() + timeout
        while True:
            load = self._start_load(name, slot, generation)
            if load is None:
                break  # swapped already, or backing off after a failure
            remaining = deadline - self._clock()
            if remaining <= 0 or not load.done.wait(remaining):
                break
            if load.generation == generation:
                break
            # A load for an older generation finished; ours starts on the next turn.
        served = slot.served
        if served is None:
            failure = slot.failure
            if failure is not None:
                raise ModelUnavailable(
                    f"Model {name!r} is not available: its production version failed to load.",
                    details={"model": name},
                    private=failure.error,
                )
            raise ModelUnavailable(
                f"Model {name!r} is not available yet: it is still loading.", details={"model": name}
            )
        return served

    # -- loading --------------------------------------------------------------------------------

    def preload(self, name: str) -> ServedModel:
        """Load a model before the first request (process start-up); raises ModelUnavailable on failure."""
        return self.get(name)

    def _slot(self, name: str) -> _Slot:
        slot = self._slots.get(name)
        if slot is None:
            with self._slots_lock:
                slot = self._slots.setdefault(name, _Slot())
        return slot

    def _start_load(self, name: str, slot: _Slot, generation: Generation) -> _Load | None:
        """The load to wait for: the running one, a new one, or None when there is nothing to wait for."""
        with slot.lock:
            if slot.served is not None and slot.served.generation == generation:
                return None
            if slot.loading is not None:
                return slot.loading  # one load at a time per model
            failure = slot.failure
            if failure is not None and failure.generation == generation and self._clock() < failure.retry_at:
                return None
            load = slot.loading = _Load(generation)
        thread = threading.Thread(target=self._load, args=(name, slot, load), name=f"model-load-{name}", daemon=True)
        thread.start()
        return load

    def _load(self, name: str, slot: _Slot, load: _Load) -> None:
        started = self._clock()
        try:
            version, predictor = self._loader_fn(name)
        except Exception as exc:  # noqa: BLE001  (any load failure leaves the old version serving)
            self._record_failure(name, slot, load, exc)
        else:
            served = ServedModel(name, version, predictor, datetime.now(UTC), load.generation)
            with slot.lock:
                previous = slot.served
                slot.served = served  # the swap: one reference assignment
                slot.failure = None
            logger.info(
                "serving.swapped model=%s version=%s previous=%s generation=%s load_s=%.3f",
                name,
                version,
                previous.version if previous is not None else None,
                load.generation,
                self._clock() - started,
            )
            self._report_loaded(served)
        finally:
            with slot.lock:
                slot.loading = None
            load.done.set()

    def _record_failure(self, name: str, slot: _Slot, load: _Load, exc: BaseException) -> None:
        version = failed_version(exc)
        with slot.lock:
            previous = slot.failure
            attempts = previous.attempts + 1 if previous and previous.generation == load.generation else 1
            delay = min(self.retry_base_s * 2 ** (attempts - 1), self.retry_max_s)
            error = getattr(exc, "private", "") or f"{type(exc).__name__}: {exc}"
            slot.failure = _Failure(load.generation, attempts, self._clock() + delay, error)
            serving = slot.served.version if slot.served is not None else None
        logger.error(
            "serving.load_failed model=%s version=%s generation=%s attempt=%d retry_in_s=%.0f serving=%s error=%r",
            name,
            version,
            load.generation,
            attempts,
            delay,
            serving,
            exc,
        )
        if self._on_load_failure is not None:
            try:
                self._on_load_failure(name, version, exc)
            except Exception:  # a broken failure hook must not kill the loader thread
                logger.exception("serving.failure_hook_failed model=%s", name)

    def _report_loaded(self, served: ServedModel) -> None:
        if self._on_loaded is None:
            return
        try:
            self._on_loaded(served)
        except Exception:  # a broken hook must not kill the loader thread
            logger.exception("serving.loaded_hook_failed model=%s", served.name)

    # -- introspection --------------------------------------------------------------------------

    def status(self) -> dict[str, dict]:
        """What each model serves and whether a load is running or failing, for health pages."""
        report = {}
        for name, slot in list(self._slots.items()):
            served, loading, failure = slot.served, slot.loading, slot.failure
            report[name] = {
                "version": served.version if served else None,
                "generation": served.generation if served else None,
                "loaded_at": served.loaded_at.isoformat() if served else None,
                "loading": loading.generation if loading else None,
                "last_failure": failure.error if failure else None,
                "failed_attempts": failure.attempts if failure else 0,
            }
        return report
