"""Training jobs: what was asked, how far it got, what it produced, and why it stopped.

The row is the job's state of record. The Celery message only says "run job N": a worker claims
the row with a conditional update (queued -> running), so a message delivered twice never trains
twice, and the reaper can fail or re-enqueue what the broker lost.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from backend.registry.models import KEY_METRICS


class TrainingJob(models.Model):
    class Kind(models.TextChoices):
        DETECTION = "detection", "Detection (YOLO)"
        CLASSIFICATION = "classification", "Classification (YOLO)"
        TABULAR = "tabular", "Tabular (XGBoost)"
        SEARCH = "search", "Hyperparameter search (Optuna)"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=20, choices=Kind.choices)
    model_name = models.SlugField(max_length=100, help_text="The registered model this job trains a version of.")
    dataset = models.CharField(
        max_length=500,
        help_text='A source ("synthetic:shapes", "synthetic:classification", "sklearn:breast_cancer", '
        '"kaggle:OWNER/DATASET", "folder:PATH") or the path of a prepared dataset.',
    )
    # Trainer overrides over params.yaml; "data" (ingest options), "split" and "validate" are
    # taken out for the data preparation; a search job names its "target" kind and "trials".
    params = models.JSONField(default=dict, blank=True)
    auto_promote = models.BooleanField(
        default=False,
        help_text="Promote the trained version when it beats production on the same holdout by the margin (and "
        "passes its smoke test); otherwise it is staged for review.",
    )
    promote_margin = models.FloatField(
        default=0.0, help_text="With auto_promote: how much the primary metric must beat production's by."
    )
    trigger = models.CharField(
        max_length=300, blank=True, help_text="What started the job when no one did (a training policy and why)."
    )
    # Two jobs with the same non-empty key are never queued or running at once (bootstrap_models).
    dedupe_key = models.CharField(max_length=100, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    # Progress: epochs (detector, classifier), boosting rounds (tabular) or trials (search).
    epoch = models.PositiveIntegerField(default=0)
    epochs = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0, help_text="Percent done, 0-100.")
    stage = models.CharField(max_length=40, blank=True, help_text="queued, preparing data, training, registering...")
    metrics = models.JSONField(default=dict, blank=True, help_text="Latest metrics (final test metrics once done).")
    # [{"epoch": 1, "metrics/mAP50(B)": 0.1, "train/box_loss": 2.3, ...}, ...] for the curves.
    history = models.JSONField(default=list, blank=True)
    log_tail = models.TextField(blank=True)

    data_version = models.CharField(max_length=128, blank=True)
    dataset_path = models.CharField(max_length=500, blank=True)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    mlflow_experiment_id = models.CharField(max_length=64, blank=True)
    model_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    comparison = models.JSONField(default=dict, blank=True, help_text="The new version against production.")
    promotion_error = models.TextField(blank=True, help_text="Why auto-promotion was refused.")

    created_at = models.DateTimeField(auto_now_add=True, help_text="When the job was queued.")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="Last time its message was sent.")
    enqueue_count = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    worker_hostname = models.CharField(max_length=200, blank=True)

    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    traceback = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(status__in=["queued", "running"]) & ~Q(dedupe_key=""),
                name="training_one_active_job_per_key",
            )
        ]
        indexes = [
            # The reaper: "running jobs whose heartbeat is older than T" and "queued jobs sent before T".
            models.Index(fields=["status", "heartbeat_at"], name="training_job_status_hb_idx"),
            # bootstrap_models and the start guard: "is a job for model M queued or running?".
            models.Index(fields=["model_name", "status"], name="training_job_model_status_idx"),
            # The job list pages, newest first.
            models.Index(fields=["-created_at"], name="training_job_created_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.model_name} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("training:job-detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def mlflow_run_url(self) -> str:
        """A link to the run in the MLflow UI, when MLFLOW_UI_URL says where that is."""
        base = settings.MLFLOW_UI_URL.rstrip("/")
        if not (base and self.mlflow_run_id):
            return ""
        return f"{base}/#/experiments/{self.mlflow_experiment_id or '0'}/runs/{self.mlflow_run_id}"

    @property
    def step_unit(self) -> str:
        """What one step of progress is: an epoch (YOLO), a boosting round (XGBoost), a trial (search)."""
        return {
            self.Kind.DETECTION: "epoch",
            self.Kind.CLASSIFICATION: "epoch",
            self.Kind.TABULAR: "round",
            self.Kind.SEARCH: "trial",
        }[self.kind]

    def progress_text(self) -> str:
        """One line for people: "epoch 12 of 30, 40%" (or the stage before the first step)."""
        if not self.epochs:
            return self.stage or str(self.status)
        return f"{self.step_unit} {self.epoch} of {self.epochs}, {self.progress:.0f}%"

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())

    def key_metrics(self) -> dict[str, float]:
        """The few numbers worth a glance (the registry's key metrics), from the latest metrics."""
        metrics = self.metrics or {}
        return {name: metrics[name] for name in KEY_METRICS if isinstance(metrics.get(name), int | float)}
