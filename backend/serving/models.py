"""What the prediction logs of every image kind share: the batch of uploads a Celery task runs."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


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
