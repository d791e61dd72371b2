"""What the prediction logs of every image kind share: the row of one image run through a model, and the
batch of uploads a Celery task runs."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from backend.serving.sources import Source


class ImagePrediction(models.Model):
    """One image run through a model: what answered, how fast, the image's descriptors, and the image.

    Abstract: detection.Detection and classification.Classification add the version that answered
    (`model_version`, PROTECT: a version with predictions is evidence and cannot disappear under them)
    and what it answered.
    Rows are evidence (never edited; retention deletes only the stored files), every row names the
    version that answered, and ids are random UUIDs working as capabilities.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    filename = models.CharField(max_length=255, blank=True, help_text="The uploaded file's name.")
    # The upload as sent (exact evidence) and a small JPEG of the decoded image; deleted by retention.
    image = models.FileField(max_length=255, blank=True)
    thumbnail = models.FileField(max_length=255, blank=True)
    image_deleted_at = models.DateTimeField(null=True, blank=True)
    width = models.PositiveIntegerField(help_text="After EXIF orientation.")
    height = models.PositiveIntegerField()
    # mlops.inference.features.image_features: width, height, brightness, contrast, sharpness, colourfulness.
    features = models.JSONField(default=dict)
    latency_ms = models.FloatField(help_text="Server time from the request to the answer.")
    inference_ms = models.FloatField(help_text="Time spent in the model (pre- and post-processing included).")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    session_key = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def has_image(self) -> bool:
        return bool(self.image) and self.image_deleted_at is None

    def class_names(self) -> list[str]:
        return list((self.model_version.metadata or {}).get("class_names", []))


class PredictionBatch(models.Model):
    """Many images (a zip or several files) run by a Celery task, with progress and downloadable results.

    Abstract: each image app keeps its own table (detection.Batch, classification.ClassificationBatch)
    with its own prediction parameters; backend.serving.batches runs them all the same way.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model_name = models.CharField(max_length=100, help_text="Registered model whose production version runs it.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0, help_text="Images done, with or without an error.")
    failed = models.PositiveIntegerField(default=0)
    # Media-relative folder holding the inputs until the task has run them.
    input_dir = models.CharField(max_length=255, blank=True)
    # Inputs in processing order: [{"filename", "path"}]; per-image failures: [{"filename", "code", "message"}].
    inputs = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, help_text="Why the whole batch failed.")
    task_id = models.CharField(max_length=255, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    session_key = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"batch {self.id} ({self.status}, {self.processed}/{self.total})"

    @property
    def progress(self) -> float:
        return round(self.processed / self.total, 4) if self.total else 0.0

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)
