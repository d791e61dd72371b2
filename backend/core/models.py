"""Rows every app writes into: the errors prediction endpoints answered with."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class PredictionError(models.Model):
    """One prediction request answered with an error (rejected upload, unknown model, failed predict...).

    Successful predictions are in each kind's log; errors have no such row, so they are kept here
    for the monitoring roll-ups (error rate and errors by code per model and minute).
    """

    model_name = models.CharField(max_length=100, blank=True, help_text="As asked, or the kind's default.")
    kind = models.CharField(max_length=20)
    code = models.CharField(max_length=64, help_text="The error body's code, e.g. invalid_image.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Roll-ups: the errors of one time bucket.
            models.Index(fields=["created_at"], name="prediction_error_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.model_name or self.kind})"
