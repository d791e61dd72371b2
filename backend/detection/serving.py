"""The models this process serves: one hot-swapped holder per process, shared by every thread.

Per request the holder only compares the model's serving generation (a Redis GET, see
backend.registry.serving) with the one it loaded. When it moved, the production version is read
from the database, its serving artifacts are fetched and sha256-verified, and the predictor is
built (ONNX preferred) and warmed up beside the old one before the reference is swapped.
Requests in flight keep the ServedModel they started with. A version that fails to load leaves
the old one serving and is marked on its row (load_error) for monitoring.

Nothing here imports torch, ultralytics, xgboost or mlflow: a version with ONNX files is served
by ONNX Runtime alone.
"""

from __future__ import annotations

import logging
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.utils import timezone

from backend.core.mlops_config import mlops_config
from backend.registry.models import ModelVersion, RegisteredModel
from backend.registry.serving import serving_generation
from mlops.exceptions import InvalidInput, MlopsError, ModelUnavailable, NotFound
from mlops.inference.serving import ModelServer, ServedModel
from mlops.registry.artifacts import fetch_artifact
from mlops.registry.entities import ArtifactRole

logger = logging.getLogger(__name__)

# What a predictor needs, per kind, in order of preference: ONNX first; the source format only
# for a version without ONNX (it imports torch or xgboost into this process).
_ROLE_CHOICES = {
    "detection": ((ArtifactRole.ONNX,), (ArtifactRole.WEIGHTS,)),
    "tabular": ((ArtifactRole.ONNX,), (ArtifactRole.XGBOOST,)),
}


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
        return {"name": self.model_name, "version": self.version, "label": self.label}

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


def raise_if_training(model_name: str) -> None:
    """503 naming the training job when the model's first version is still being trained."""
    from backend.training.models import TrainingJob

    active = [TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING]
    job = TrainingJob.objects.filter(model_name=model_name, status__in=active).order_by("created_at").first()
    if job is not None:
        raise ModelUnavailable(
            f"{model_name!r} has no version in production yet: training job #{job.pk} is {job.status}"
            f" ({job.progress_text()}); follow it at /training/jobs/{job.pk}/ and try again when it is done.",
            code="model_training",
            details={"model": model_name, "training_job": job.pk, "status": job.status},
        )


def serving_files(version: ModelVersion) -> dict[str, Path]:
    """The version's serving artifacts as local, sha256-verified paths (only the ones it will load)."""
    if version.artifacts_deleted_at:
        raise NotFound(f"{version}'s artifacts were deleted by retention.", code="artifact_missing")
    cache_dir = Path(mlops_config().model_cache_dir) / version.model.name / str(version.version)
    for roles in _ROLE_CHOICES.get(version.model.kind, ()):
        if all(version.artifact(role) is not None for role in roles):
            files = {str(role): fetch_artifact(version.artifact(role), cache_dir) for role in roles}
            schema = version.artifact(ArtifactRole.FEATURE_SCHEMA)
            if version.model.kind == "tabular" and schema and not version.metadata.get("feature_schema"):
                files[str(ArtifactRole.FEATURE_SCHEMA)] = fetch_artifact(schema, cache_dir)
            return files
    raise NotFound(f"{version} has no servable artifact.", code="artifact_missing")


class VersionLoadFailed(ModelUnavailable):
    """A production version could not be loaded; `version` names it for the failure hook."""

    code = "model_load_failed"

    def __init__(self, message: str, *, version: ServingVersion):
        super().__init__(message, details={"model": version.model_name, "version": version.version})
        self.version = version


def load_production(model_name: str):
    """loader_fn of the holder: (ServingVersion, predictor) for the model's production version.

    Runs in the holder's loading thread, which owns its database connection: closed on the way out.
    """
    from mlops.inference.loader import load_predictor

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
    from mlops.inference.loader import sample_image

    if predictor.kind == "detection":
        predictor.predict(sample_image())
    else:
        predictor.predict([{feature.name: feature.typical_value() for feature in predictor.features}])


def record_load_failure(model_name: str, version, error: BaseException) -> None:
    """on_load_failure of the holder: mark the version (once per failure) so monitoring can alert."""
    if not isinstance(version, ServingVersion):
        return  # nothing in production, or the database did not answer: no version to mark
    message = getattr(error, "message", None) or str(error)
    try:
        # Conditional: once one process recorded the failure, the others change nothing.
        ModelVersion.objects.filter(pk=version.id, load_error="").update(
            load_error=message[:2000], load_error_at=timezone.now()
        )
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
                )
    return _server


_known_models: set[str] = set()


def preload_default_models() -> threading.Thread:
    """Load the default detector and tabular model in the background (web worker start-up, gunicorn.conf.py).

    The first request after a start then finds them loaded instead of paying the load and warm-up.
    A model with nothing in production is skipped (logged); requests load it once it is promoted.
    """
    names = [name for name in (settings.DEFAULT_DETECTION_MODEL, settings.DEFAULT_TABULAR_MODEL) if name]

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


def served_model(model_name: str, kind: str) -> ServedModel:
    """The served model to answer this request with (its version stays fixed for the request).

    Raises NotFound for a model the registry does not know (checked until it served once, so that
    made-up names never reach the holder) and ModelUnavailable when nothing is in production.
    """
    if model_name not in _known_models and not RegisteredModel.objects.filter(name=model_name).exists():
        raise_if_training(model_name)
        raise NotFound(f"There is no registered model named {model_name!r}.", code="model_not_found")
    try:
        served = model_server().get(model_name)
    except ModelUnavailable:
        raise_if_training(model_name)
        production_version(model_name)  # raises the clear "nothing in production yet" error
        raise
    _known_models.add(model_name)
    version: ServingVersion = served.version
    if version.kind != kind:
        raise InvalidInput(
            f"{model_name!r} is a {version.kind} model, not a {kind} model.",
            code="wrong_model_kind",
            details={"model": model_name, "kind": version.kind},
        )
    return served


# -- concurrent predictions -------------------------------------------------------------------------
# ONNX Runtime keeps the activations of every run that was ever concurrent in its arena, so each extra
# simultaneous predict of a 640-px detector adds tens of MB to the process for good, and one run
# already spreads over every core. SERVING_CONCURRENT_PREDICTIONS caps them per model and process:
# 1 (the default) bounds a process's memory at one run's activations while its other threads decode
# and answer; 0 leaves it to the web server's threads.
_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_slots_lock = threading.Lock()


def _slot_count() -> int:
    return settings.SERVING_CONCURRENT_PREDICTIONS


@contextmanager
def inference_slot(predictor):
    """Hold one of the predictor's slots (SERVING_CONCURRENT_PREDICTIONS; 0: no limit) while predicting."""
    count = _slot_count()
    if count <= 0:
        yield
        return
    semaphore = _slots.get(predictor)
    if semaphore is None:
        with _slots_lock:
            semaphore = _slots.setdefault(predictor, threading.BoundedSemaphore(count))
    with semaphore:
        yield
