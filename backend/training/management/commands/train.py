"""Start a training job from the shell; with --wait, follow it with a progress bar until it ends."""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from backend.training import services
from backend.training.job_requests import SEARCH_TARGETS, steps_param, trainer_kind
from backend.training.models import TrainingJob
from mlops.exceptions import MlopsError

POLL_S = 1.0


class Command(BaseCommand):
    help = (
        "Queue a training job on the trainer worker (the `training` queue). "
        "--wait follows it with a progress bar and exits non-zero unless it succeeds."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=TrainingJob.Kind.values)
        parser.add_argument(
            "--epochs", type=int, help="Detector or classifier epochs; tabular: boosting rounds (n_estimators)."
        )
        parser.add_argument("--imgsz", type=int, help="Detector or classifier image size (a multiple of 32).")
        parser.add_argument("--model-name", default="", help="Registered model to train (default: the kind's).")
        parser.add_argument(
            "--dataset",
            default="",
            help="synthetic:shapes, synthetic:classification, sklearn:breast_cancer, synthetic:tabular, "
            "kaggle:OWNER/DATASET, folder:PATH, or a prepared dataset's path (default: the kind's).",
        )
        parser.add_argument("--params", default="", help="More trainer params as JSON, e.g. '{\"batch\": 8}'.")
        parser.add_argument("--target", choices=SEARCH_TARGETS, help="Search: the kind of model to tune.")
        parser.add_argument("--trials", type=int, help="Search: number of Optuna trials.")
        parser.add_argument(
            "--promote",
            action="store_true",
            help="Promote the new version if it beats production and passes its smoke test (recorded as the system's).",
        )
        parser.add_argument("--wait", action="store_true", help="Follow the job until it ends.")
        parser.add_argument("--timeout", type=float, default=0, help="With --wait: give up after this many seconds.")

    def handle(self, *args, **options):
        params = self._params(options)
        try:
            job = services.start_job(
                options["kind"],
                model_name=options["model_name"],
                dataset=options["dataset"],
                params=params,
                auto_promote=options["promote"],
                # No person asked (manage.py runs as the installation): with --promote it promotes as the system.
                trigger="manage.py train" + (" --promote" if options["promote"] else ""),
            )
        except MlopsError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Queued training job #{job.pk}: {job.kind} {job.model_name} on {job.dataset} "
            f"(page: /training/jobs/{job.pk}/)"
        )
        if not options["wait"]:
            return
        job = self._follow(job, timeout=options["timeout"])
        self._report(job)

    def _params(self, options) -> dict:
        try:
            params = json.loads(options["params"]) if options["params"] else {}
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise CommandError("--params must be a JSON object")
        if options["target"]:
            params["target"] = options["target"]
        if options["trials"] is not None:
            params["trials"] = options["trials"]
        if options["epochs"] is not None:
            params[steps_param(options["kind"], params)] = options["epochs"]
        if options["imgsz"] is not None:
            if trainer_kind(options["kind"], params) == TrainingJob.Kind.TABULAR:
                raise CommandError("--imgsz applies to image models only (detection, classification)")
            params["imgsz"] = options["imgsz"]
        return params

    def _follow(self, job: TrainingJob, *, timeout: float) -> TrainingJob:
        """A tqdm bar over the job's percent, with the epoch, stage and key metrics beside it."""
        deadline = time.monotonic() + timeout if timeout else None
        bar = tqdm(total=100, desc=f"job #{job.pk}", unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}{postfix}]")
        try:
            while True:
                job.refresh_from_db()
                bar.n = job.progress
                bar.set_description_str(f"job #{job.pk} {job.stage or job.status}", refresh=False)
                bar.set_postfix_str(self._postfix(job), refresh=False)
                bar.refresh()
                if job.is_final:
                    return job
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError(f"job #{job.pk} is still {job.status} after {timeout:.0f}s (it keeps running)")
                time.sleep(POLL_S)
        except KeyboardInterrupt as exc:
            raise CommandError(
                f"stopped following job #{job.pk}; it keeps running. Cancel it with "
                f"POST /api/v1/training-jobs/{job.pk}/cancel/ or the admin."
            ) from exc
        finally:
            bar.close()

    @staticmethod
    def _postfix(job: TrainingJob) -> str:
        parts = [f"{job.step_unit} {job.epoch}/{job.epochs}"] if job.epochs else []
        for name in ("mAP50", "mAP50-95", "top1", "val/logloss", "accuracy", "roc_auc"):
            value = (job.metrics or {}).get(name)
            if isinstance(value, int | float):
                parts.append(f"{name}={value:.3f}")
        return ", ".join(parts)

    def _report(self, job: TrainingJob) -> None:
        if job.status == TrainingJob.Status.SUCCEEDED:
            version = job.model_version
            label = f"{version.model.name} {version.semantic_label} (#{version.version}, {version.status})"
            self.stdout.write(self.style.SUCCESS(f"Job #{job.pk} succeeded: {label}"))
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in job.key_metrics().items())
            if metrics:
                self.stdout.write(f"  test metrics: {metrics}")
            if job.comparison:
                self.stdout.write(f"  against production: {job.comparison.get('verdict')}")
            if job.promotion_error:
                self.stdout.write(self.style.WARNING(f"  not promoted: {job.promotion_error}"))
            return
        if job.status == TrainingJob.Status.CANCELLED:
            raise CommandError(f"job #{job.pk} was cancelled")
        raise CommandError(f"job #{job.pk} failed ({job.error_code}): {job.error}")
