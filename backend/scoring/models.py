"""The prediction log of tabular models: one row per scored record."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from backend.registry.models import ModelVersion


class TabularPrediction(models.Model):
    """One record scored by a version: its inputs, the class and probabilities, and how long it took."""

    class Source(models.TextChoices):
        API = "api", "REST API"
        WEB = "web", "Scoring form"

    # The records of one call share a request id (and its latency).
    request_id = models.UUIDField(default=uuid.uuid4, editable=False)
    record_index = models.PositiveIntegerField(default=0)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="tabular_predictions")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    inputs = models.JSONField(help_text="Feature name -> value, as validated against the schema.")
    label = models.CharField(max_length=100)
    class_id = models.PositiveIntegerField()
    probabilities = models.JSONField(help_text="Class name -> probability.")
    confidence = models.FloatField(help_text="The probability of the predicted class.")
    latency_ms = models.FloatField(help_text="Server time of the whole call that scored this record.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    session_key = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "record_index"]
        indexes = [
            # Monitoring: a version's recent predictions (drift on inputs, class balance of outputs).
            models.Index(fields=["model_version", "created_at"], name="scoring_version_time_idx"),
            models.Index(fields=["created_at"], name="scoring_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.confidence:.2f}) by {self.model_version_id}"
