"""The product's Prometheus metrics: every family is defined here, once, and recorded by the apps above.

Multiprocess mode: gunicorn's workers and Celery's processes each write their values into files under
PROMETHEUS_MULTIPROC_DIR (settings puts it into the environment before anything imports
prometheus_client, which picks its value class at import), and GET /metrics merges every file, so
each scrape sees the sum over all processes. Counters and histograms of processes that have exited
stay in the totals until the web server next starts; the serving generation gauge only counts
processes still alive (`mark_process_dead`, called by gunicorn's and Celery's exit hooks).

Without the variable (PROMETHEUS_MULTIPROC_DIR set to empty) every process keeps its own values in
memory and /metrics shows those of the process that answered the scrape only: enough for
`manage.py runserver`, wrong behind several workers.

Gauges whose truth is in the database (training jobs by status; drift shares, added by the
monitoring app) are read when Prometheus scrapes, by the collectors apps add with
`register_collector`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)

if settings.PROMETHEUS_MULTIPROC_DIR and values.ValueClass is values.MutexValue:
    raise ImproperlyConfigured(
        "prometheus_client was imported before the settings set PROMETHEUS_MULTIPROC_DIR: this process's "
        "metrics would not reach /metrics. Import the settings first (see gunicorn.conf.py)."
    )

# What Prometheus is answered with: the classic text format, which every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN = "unknown"

# 1 ms (a tabular record) to 10 s (a large photo on a busy CPU).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

PREDICTIONS = Counter(
    "modelyard_predictions_total",
    "Predictions answered: one per image detected, one per tabular record scored.",
    ["model", "version", "kind"],
)
PREDICTION_LATENCY = Histogram(
    "modelyard_prediction_latency_seconds",
    "Time from the request reaching the view (a batch: the image being read) to the answer, per call.",
    ["model", "version", "kind"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE = Histogram(
    "modelyard_inference_seconds",
    "Time the model itself took to predict (ONNX Runtime, pre- and post-processing), per call.",
    ["model", "version", "kind"],
    buckets=LATENCY_BUCKETS,
)
PREDICTED_CLASSES = Counter(
    "modelyard_predicted_class_total",
    "Predicted classes: one per box a detector returned, one per tabular record by its label.",
    ["model", "version", "class_name"],
)
PREDICTION_ERRORS = Counter(
    "modelyard_prediction_errors_total",
    "Prediction calls answered with an error (rejected uploads too), by the code of the error body.",
    ["model", "kind", "code"],
)
MODEL_LOAD_FAILURES = Counter(
    "modelyard_model_load_failures_total",
    "Attempts to load a production version that failed (the previous version keeps serving).",
    ["model", "version"],
)
# livemax: the generation is a deployment id, so it only grows (a rollback is a new deployment).
# The maximum over the live processes is the newest deployment any of them serves; processes swap
# lazily on their next request for the model, so an idle one (a Celery worker that ran one batch)
# would hold `livemin` back for good, and `liveall` would add a pid label per process. Exited
# processes drop out (mark_process_dead).
SERVING_GENERATION = Gauge(
    "modelyard_serving_generation",
    "Serving generation (the deployment id) of the newest version a live process serves.",
    ["model"],
    multiprocess_mode="livemax",
)


@dataclass(frozen=True)
class ScrapeGauge:
    """A gauge read from the database at each scrape, so every process reports the same truth."""

    name: str
    documentation: str
    labelnames: tuple[str, ...]

    def family(self, samples: Mapping[tuple[str, ...], float]) -> GaugeMetricFamily:
        """The family with one sample per label tuple, e.g. {("running",): 2}."""
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in samples.items():
            family.add_metric(list(labels), value)
        return family


TRAINING_JOBS = ScrapeGauge("modelyard_training_jobs", "Training jobs by status.", ("status",))

# -- recording -------------------------------------------------------------------------------------
# Names a process has served or tried to load: only these become label values, so a made-up model
# name in a request cannot add series.
_known_models: set[str] = set()


def model_label(name: str | None) -> str:
    """`name` when this process served it (or it is a default model), else "unknown"."""
    defaults = (
        settings.DEFAULT_DETECTION_MODEL,
        settings.DEFAULT_TABULAR_MODEL,
        settings.DEFAULT_CLASSIFICATION_MODEL,
    )
    return name if name and (name in _known_models or name in defaults) else UNKNOWN


def observe_prediction(
    model: str,
    version: int,
    kind: str,
    *,
    latency_s: float,
    inference_s: float,
    class_names: Iterable[str],
    count: int = 1,
) -> None:
    """One answered call: `count` predictions (records scored, or one image) and the classes predicted."""
    labels = (model, str(version), kind)
    PREDICTIONS.labels(*labels).inc(count)
    PREDICTION_LATENCY.labels(*labels).observe(latency_s)
    INFERENCE.labels(*labels).observe(inference_s)
    for class_name, n in Tally(class_names).items():
        PREDICTED_CLASSES.labels(model, str(version), class_name).inc(n)


def count_prediction_error(model: str | None, kind: str, code: str) -> None:
    PREDICTION_ERRORS.labels(model_label(model), kind, code).inc()


def count_load_failure(model: str, version: int) -> None:
    _known_models.add(model)
    MODEL_LOAD_FAILURES.labels(model, str(version)).inc()


def record_serving_generation(model: str, generation: int) -> None:
    _known_models.add(model)
    SERVING_GENERATION.labels(model).set(generation)


# -- collectors read at scrape time ----------------------------------------------------------------
Collect = Callable[[], Iterable[Metric]]
_collectors: dict[str, Collect] = {}


def register_collector(collect: Collect) -> None:
    """Add a function that returns metric families at each scrape (called once per function, from ready())."""
    _collectors[f"{collect.__module__}.{collect.__qualname__}"] = collect


class _ScrapeTimeCollector:
    """The registered collectors; one that fails (the database is down) is logged and left out."""

    def collect(self) -> Iterable[Metric]:
        for name, collect in list(_collectors.items()):
            try:
                families = list(collect())
            except Exception:  # the other families are still worth a scrape
                logger.exception("metrics.collector_failed collector=%s", name)
                continue
            yield from families


class _ThisProcess:
    """The default registry (this process's metrics only), for the single-process fallback."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition() -> bytes:
    """Every process's metrics and the scrape-time gauges, in Prometheus' text format."""
    registry = CollectorRegistry()
    if settings.PROMETHEUS_MULTIPROC_DIR:
        prometheus_multiprocess.MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        registry.register(_ThisProcess())
    registry.register(_ScrapeTimeCollector())
    return generate_latest(registry)


# -- the files of multiprocess mode ----------------------------------------------------------------
def process_exited(pid: int) -> None:
    """A worker process ended: its live gauges (the serving generation) stop counting."""
    if settings.PROMETHEUS_MULTIPROC_DIR:
        prometheus_multiprocess.mark_process_dead(pid, settings.PROMETHEUS_MULTIPROC_DIR)


def remove_files_of_exited_processes() -> list[Path]:
    """At web server start: delete the value files of processes no longer running.

    Not the whole directory: the Celery workers, which may have started first, keep writing into
    files they hold open, and their series would vanish until they restart.
    """
    if not settings.PROMETHEUS_MULTIPROC_DIR:
        return []
    removed = []
    for path in Path(settings.PROMETHEUS_MULTIPROC_DIR).glob("*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _running(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
