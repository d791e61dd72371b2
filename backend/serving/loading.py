"""The models this process serves: one hot-swapped holder per process, shared by every thread.

Per request the holder only compares the model's serving generation (a Redis GET, see
backend.serving.generation) with the one it loaded. When it moved, the production version is read
from the database, its serving artifacts are fetched and sha256-verified, and the predictor is
built (ONNX preferred) and warmed up beside the old one before the reference is swapped.
Requests in flight keep the ServedModel they started with. A version that fails to load leaves
the old one serving, is marked on its row (load_error) for monitoring and counted in
modelyard_model_load_failures_total; each swap sets modelyard_serving_generation.

Nothing here imports torch, ultralytics, xgboost or mlflow: a version with ONNX files is served
by ONNX Runtime alone.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections
from django.utils import timezone

from backend.core import metrics
from backend.registry.artifacts import serving_files
from backend.registry.models import ModelVersion, model_ref
from backend.serving.generation import serving_generation
from backend.serving.signals import model_load_failed
from mlops.exceptions import MlopsError, ModelUnavailable
from mlops.inference.loader import load_predictor, sample_image
from mlops.inference.serving import ModelServer, ServedModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingVersion:
    """The registry version behind a served predictor, as responses and prediction rows name it."""

    id: int
    model_name: str
    kind: str
    version: int
    label: str
    metadata: dict = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        return model_ref(self.model_name, self.version, self.label)

    def __str__(self) -> str:
        return f"{self.model_name} {self.label} (#{self.version})"


def production_version(model_name: str) -> ModelVersion:
    version = (
        ModelVersion.objects.select_related("model")
        .filter(model__name=model_name, status=ModelVersion.Status.PRODUCTION)
        .first()
    )
    if version is None:
        raise ModelUnavailable(
            f"No version of {model_name!r} is in production yet.",
            code="no_production_version",
            details={"model": model_name},
        )
    return version


class VersionLoadFailed(ModelUnavailable):
    """A production version could not be loaded; `version` names it for the failure hook."""

    code = "model_load_failed"

    def __init__(self, reason: str, *, version: ServingVersion):
        super().__init__(
            f"{version} could not be loaded.",
            details={"model": version.model_name, "version": version.version},
            private=reason,
        )
        self.version = version


def load_production(model_name: str):
    """loader_fn of the holder: (ServingVersion, predictor) for the model's production version.

    Runs in the holder's loading thread, which owns its database connection: closed on the way out.
    """
    try:
        version = production_version(model_name)
        info = ServingVersion(
            id=version.pk,
            model_name=model_name,
            kind=version.model.kind,
            version=version.version,
            label=version.semantic_label,
            metadata=dict(version.metadata or {}),
        )
        try:
            files = serving_files(version)
            threads = settings.SERVING_INTRA_OP_THREADS or None
            predictor = load_predictor(
                version.model.kind,
                files,
                version.metadata,
                intra_op_threads=threads,
                spinning=settings.SERVING_ONNX_SPINNING,
                engine=settings.SERVING_ENGINE,
            )
            warm_up(predictor)
        except Exception as exc:
            detail = f"{exc.code}: {exc.message}" if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"
            raise VersionLoadFailed(f"{info} could not be loaded: {detail}", version=info) from exc
    finally:
        connections.close_all()
    logger.info("serving.loaded model=%s version=%s files=%s", model_name, info.label, sorted(files))
    return info, predictor


def warm_up(predictor) -> None:
    """One prediction before the version serves: ONNX Runtime's first run is several times slower.

    The full smoke test already ran when the version was promoted, on files with the same sha256.
    """
    if predictor.kind in ("detection", "classification"):
        predictor.predict(sample_image())
    else:
        predictor.predict([{feature.name: feature.typical_value() for feature in predictor.features}])


def record_loaded(served: ServedModel) -> None:
    """on_loaded of the holder: the serving generation this process now answers with."""
    metrics.record_serving_generation(served.name, served.generation)


def record_load_failure(model_name: str, version, error: BaseException) -> None:
    """on_load_failure of the holder: count the attempt and mark the version (once per failure) so
    monitoring can alert."""
    if not isinstance(version, ServingVersion):
        return  # nothing in production, or the database did not answer: no version failed to load
    metrics.count_load_failure(model_name, version.version)
    message = getattr(error, "private", "") or getattr(error, "message", None) or str(error)
    try:
        # Conditional: once one process recorded the failure, the others change nothing.
        recorded = ModelVersion.objects.filter(pk=version.id, load_error="").update(
            load_error=message[:2000], load_error_at=timezone.now()
        )
        if recorded:
            model_load_failed.send(sender=ModelVersion, model_name=model_name, version=version.version, error=message)
    finally:
        connections.close_all()


_server: ModelServer | None = None
_server_lock = threading.Lock()


def model_server() -> ModelServer:
    """The process-wide holder, created on first use (never at import time)."""
    global _server
    if _server is None:
        with _server_lock:
            if _server is None:
                _server = ModelServer(
                    generation_fn=serving_generation,
                    loader_fn=load_production,
                    on_load_failure=record_load_failure,
                    on_loaded=record_loaded,
                )
    return _server


def preload_default_models() -> threading.Thread:
    """Load the default detector, tabular model and classifier in the background (web worker start-up,
    gunicorn.conf.py).

    The first request after a start then finds them loaded instead of paying the load and warm-up.
    A model with nothing in production is skipped (logged); requests load it once it is promoted.
    """
    defaults = (settings.DEFAULT_DETECTION_MODEL, settings.DEFAULT_TABULAR_MODEL, settings.DEFAULT_CLASSIFICATION_MODEL)
    names = [name for name in defaults if name]

    def run() -> None:
        try:
            for name in names:
                try:
                    served = model_server().preload(name)
                except MlopsError as exc:  # nothing in production yet, or a broken version: requests will say
                    logger.info("serving.preload_skipped model=%s reason=%s", name, exc)
                else:
                    logger.info("serving.preloaded model=%s version=%s", name, served.version)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="serving-preload", daemon=True)
    thread.start()
    return thread
