"""What a prediction endpoint asks of serving: the model to answer with, a slot to run it in, who
asked, and what a client needs to know to call a model."""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from backend.registry.models import Deployment, ModelVersion, RegisteredModel
from backend.serving.loading import ServingVersion, model_server, production_version
from backend.training.models import TrainingJob
from mlops.exceptions import InvalidInput, ModelNotFound, ModelUnavailable
from mlops.inference.serving import ServedModel


@dataclass(frozen=True)
class Requester:
    """Who asked: a signed-in user, an anonymous browser session, or nobody we can name."""

    user: object | None = None
    session_key: str = ""

    @classmethod
    def from_request(cls, request) -> Requester:
        user = request.user if request.user.is_authenticated else None
        session = getattr(request, "session", None)
        return cls(user=user, session_key=(session.session_key or "") if session is not None else "")


# Models that served once in this process: later requests skip the "is it registered" query.
_known_models: set[str] = set()


def served_model(model_name: str, kind: str) -> ServedModel:
    """The served model to answer this request with (its version stays fixed for the request).

    Raises ModelNotFound for a model the registry does not know (checked until it served once, so
    that made-up names never reach the holder) and ModelUnavailable when nothing is in production.
    """
    if model_name not in _known_models and not RegisteredModel.objects.filter(name=model_name).exists():
        raise_if_training(model_name)
        raise ModelNotFound(model_name)
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


def training_job_for(model_name: str) -> TrainingJob | None:
    """The oldest queued or running training job of `model_name` (the one its first version waits for)."""
    active = [TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING]
    return TrainingJob.objects.filter(model_name=model_name, status__in=active).order_by("created_at").first()


def raise_if_training(model_name: str) -> None:
    """503 naming the training job when the model's first version is still being trained."""
    job = training_job_for(model_name)
    if job is not None:
        raise ModelUnavailable(
            f"{model_name!r} has no version in production yet: training job #{job.pk} is {job.status}"
            f" ({job.progress_text()}); follow it at /training/jobs/{job.pk}/ and try again when it is done.",
            code="model_training",
            details={"model": model_name, "training_job": job.pk, "status": job.status},
        )


# -- concurrent predictions -------------------------------------------------------------------------
# ONNX Runtime keeps the activations of every run that was ever concurrent in its arena, so each extra
# simultaneous predict of a 640-px detector adds tens of MB to the process for good, and one run
# already spreads over every core. SERVING_CONCURRENT_PREDICTIONS caps them per model and process:
# 1 (the default) bounds a process's memory at one run's activations while its other threads decode
# and answer; 0 leaves it to the web server's threads.
_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_slots_lock = threading.Lock()


@contextmanager
def inference_slot(predictor):
    """Hold one of the predictor's slots (SERVING_CONCURRENT_PREDICTIONS; 0: no limit) while predicting."""
    count = settings.SERVING_CONCURRENT_PREDICTIONS
    if count <= 0:
        yield
        return
    semaphore = _slots.get(predictor)
    if semaphore is None:
        with _slots_lock:
            semaphore = _slots.setdefault(predictor, threading.BoundedSemaphore(count))
    with semaphore:
        yield


# -- model info -------------------------------------------------------------------------------------
class Availability:
    """Whether a model can answer now, or what it waits for (the states of model_availability)."""

    SERVING = "serving"  # a version is in production
    TRAINING = "training"  # nothing in production; a training job for it is queued or running
    NOT_IN_PRODUCTION = "not_in_production"  # versions registered, none promoted, nothing training
    MISSING = "missing"  # no such model and nothing training for it


def model_availability(model_name: str) -> dict:
    """Can `model_name` answer now, and if not, what it waits for: its production version, or the
    training job that will make its first one (status and progress). What the pages show and poll."""
    model = RegisteredModel.objects.filter(name=model_name).first()
    version = model.versions.filter(status=ModelVersion.Status.PRODUCTION).first() if model is not None else None
    job = training_job_for(model_name) if version is None else None
    if version is not None:
        state = Availability.SERVING
    elif job is not None:
        state = Availability.TRAINING
    elif model is not None and model.versions.exists():
        state = Availability.NOT_IN_PRODUCTION
    else:
        state = Availability.MISSING
    return {
        "name": model_name,
        "state": state,
        "kind": model.kind if model is not None else (job.kind if job is not None else None),
        "production": {"version": version.version, "label": version.semantic_label} if version else None,
        "training_job": _job_progress(job) if job is not None else None,
    }


def _job_progress(job: TrainingJob) -> dict:
    return {
        "id": job.pk,
        "status": job.status,
        "stage": job.stage,
        "step_unit": job.step_unit,
        "epoch": job.epoch,
        "epochs": job.epochs,
        "progress": round(job.progress, 1),
        "progress_text": job.progress_text(),
        "url": reverse("training:job-detail", args=[job.pk]),
    }


def model_info(model_name: str) -> dict:
    """What a client needs to call a model: production version and metrics, classes or features, input size."""
    model = RegisteredModel.objects.named(model_name)
    version = model.versions.filter(status=ModelVersion.Status.PRODUCTION).first()
    production = None
    metadata = model.versions.order_by("-version").values_list("metadata", flat=True).first() or {}
    if version is not None:
        metadata = version.metadata or {}
        promotion = Deployment.objects.filter(model=model, to_version=version, succeeded=True).order_by("-id").first()
        production = {
            "version": version.version,
            "label": version.semantic_label,
            "metrics": version.metrics,
            "created_at": version.created_at.isoformat(),
            "promoted_at": promotion.created_at.isoformat() if promotion else None,
        }
    info = {
        "name": model.name,
        "kind": model.kind,
        "description": model.description,
        "production": production,
        "class_names": list(metadata.get("class_names") or model.class_names or []),
    }
    if model.kind in (RegisteredModel.Kind.DETECTION, RegisteredModel.Kind.CLASSIFICATION):
        info["input_size"] = metadata.get("imgsz")
    else:
        schema = list(metadata.get("feature_schema") or model.feature_schema or [])
        info["feature_schema"] = schema
        info["n_features"] = len(schema)
    return info
