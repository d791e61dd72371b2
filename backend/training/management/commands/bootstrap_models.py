"""First models for a fresh install: queue training of the default tabular model, classifier and detector.

`make run` calls this before the processes start; the trainer worker picks the jobs up and
promotes each version once its smoke test passes, so a newcomer's first upload gets an answer.
The first detector is Ultralytics' COCO-pretrained yolo26n when its weights can be had
(BOOTSTRAP_DETECTOR=auto or pretrained): downloaded, exported to ONNX, registered and promoted here,
in seconds; the shapes detector is trained only when they cannot (auto) or when asked (shapes).
Idempotent: a model that already has versions, or a job queued or running, is left alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from backend.registry.models import RegisteredModel
from backend.registry.services import model_registry, promote_version, record_version
from backend.training import services
from backend.training.models import TrainingJob
from backend.training.reaper import reap_stale_jobs
from backend.training.runner import HEARTBEAT_S
from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bootstrap:
    kind: str
    model_name: str
    dataset: str
    params: dict


def bootstrap_plan() -> list[Bootstrap]:
    """Fastest first, on one trainer: the tabular model (seconds), the classifier (params.yaml's small shape
    images, trained with params.yaml's settings), then the detector (minutes)."""
    return [
        Bootstrap(TrainingJob.Kind.TABULAR, settings.DEFAULT_TABULAR_MODEL, "sklearn:breast_cancer", {}),
        Bootstrap(
            TrainingJob.Kind.CLASSIFICATION, settings.DEFAULT_CLASSIFICATION_MODEL, "synthetic:classification", {}
        ),
        Bootstrap(
            TrainingJob.Kind.DETECTION,
            settings.DEFAULT_DETECTION_MODEL,
            "synthetic:shapes",
            {
                "epochs": settings.BOOTSTRAP_DETECTOR_EPOCHS,
                "imgsz": settings.BOOTSTRAP_DETECTOR_IMGSZ,
                "data": {"imgsz": settings.BOOTSTRAP_DETECTOR_IMGSZ},
            },
        ),
    ]


class Command(BaseCommand):
    help = (
        "Queue training (auto-promoted) of the default tabular, classification and detection models that the "
        "registry has no version of."
    )

    def handle(self, *args, **options):
        # `make run` after an interrupted one: a job whose worker was stopped mid-training is still
        # "running". No local worker runs yet, so one its worker does not vouch for is failed now
        # (a remote worker that answers keeps its jobs), and its model is queued again below.
        reaped = reap_stale_jobs(worker_check_after=timedelta(seconds=2 * HEARTBEAT_S))
        if reaped.failed:
            self.stdout.write(f"marked interrupted training jobs failed: {', '.join(f'#{pk}' for pk in reaped.failed)}")
        for plan in bootstrap_plan():
            self.stdout.write(f"{plan.model_name} ({plan.kind}): {self._bootstrap(plan)}")

    def _bootstrap(self, plan: Bootstrap) -> str:
        model = RegisteredModel.objects.filter(name=plan.model_name).first()
        if model is not None and model.versions.exists():
            production = model.production_version
            if production is not None:
                return f"in production as {production.semantic_label}; nothing to do"
            return "has versions but none in production; promote one in the admin (nothing queued)"
        active = services.active_job_for(plan.model_name)
        if active is not None:
            return f"training job #{active.pk} is already {active.status}; nothing to do"
        instead = ""
        if plan.kind == TrainingJob.Kind.DETECTION and settings.BOOTSTRAP_DETECTOR != "shapes":
            try:
                return self._pretrained_detector(plan.model_name)
            except MlopsError as exc:
                only_pretrained = settings.BOOTSTRAP_DETECTOR == "pretrained"
                logger.warning(
                    "bootstrap.pretrained_unavailable model=%s reason=%r: %s",
                    plan.model_name,
                    exc.message,
                    "nothing queued (BOOTSTRAP_DETECTOR=pretrained)" if only_pretrained else "training shapes instead",
                )
                if only_pretrained:
                    return (
                        f"the COCO-pretrained detector could not be had ({exc.message}); nothing queued "
                        "(BOOTSTRAP_DETECTOR=pretrained; set it to auto or shapes to train one instead)"
                    )
                instead = f"the COCO-pretrained detector could not be had ({exc.message}), so "
        try:
            job = services.start_job(
                plan.kind,
                model_name=plan.model_name,
                dataset=plan.dataset,
                params=plan.params,
                auto_promote=True,
                dedupe_key=f"bootstrap:{plan.model_name}",
                # No person asked: the job promotes as the system, and its deployment says so.
                trigger="bootstrap_models: the first model of a fresh install",
            )
        except services.JobConflict:
            return "another bootstrap queued it just now; nothing to do"
        return f"{instead}queued training job #{job.pk} (auto-promote); follow it at /training/jobs/{job.pk}/"

    def _pretrained_detector(self, model_name: str) -> str:
        """Register and promote Ultralytics' COCO-pretrained yolo26n as `model_name`; MlopsError if it cannot."""
        from mlops.training.pretrained import COCO_DETECTOR_WEIGHTS, register_pretrained_detector  # torch: only here

        started = time.monotonic()
        registry = model_registry()
        info = register_pretrained_detector(registry, model_name, asset=COCO_DETECTOR_WEIGHTS)
        version = record_version(info, metadata=registry.load_metadata(info))
        # No person asked: the system promotes it, after the same smoke test as every promotion.
        promote_version(
            version, reason=f"bootstrap_models: {COCO_DETECTOR_WEIGHTS} pretrained on COCO, the first detector"
        )
        classes = len(version.metadata.get("class_names") or [])
        return (
            f"registered and promoted {version.semantic_label} (version {version.version}): Ultralytics' "
            f"COCO-pretrained {COCO_DETECTOR_WEIGHTS} ({classes} classes) in {time.monotonic() - started:.0f}s"
        )
