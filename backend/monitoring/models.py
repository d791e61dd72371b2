"""What watches a model: drift (DriftSettings, DriftReport), performance roll-ups (PerformanceBucket) and
shadow mode (ShadowSettings, ShadowComparison)."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from backend.registry.models import ModelVersion, RegisteredModel


class DriftSettings(models.Model):
    """How one model's drift is checked; a model without a row gets the defaults (no configuration needed)."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="drift_settings")
    window_predictions = models.PositiveIntegerField(
        default=1000, help_text="The check compares the latest N predictions of the production version..."
    )
    window_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="...or, when set, those of the last T hours (sampled above max_rows)."
    )
    min_samples = models.PositiveIntegerField(
        default=100, help_text='Below this many predictions a check records "not enough data", never "no drift".'
    )
    reference_predictions = models.PositiveIntegerField(
        default=500,
        help_text="A version registered without a training reference is compared with its first N predictions.",
    )
    method = models.CharField(
        max_length=40,
        blank=True,
        help_text="Evidently's test for every column (ks, wasserstein, psi...); blank: its own.",
    )
    threshold = models.FloatField(null=True, blank=True, help_text="Per-column threshold; blank: the method's own.")
    column_methods = models.JSONField(default=dict, blank=True, help_text='{"brightness": "wasserstein"}')
    column_thresholds = models.JSONField(default=dict, blank=True, help_text='{"brightness": 0.1}')
    drift_share = models.FloatField(
        null=True,
        blank=True,
        help_text="Share of drifted columns that flags the model; blank: a quarter for detectors and classifiers "
        "(their image columns move in groups), half for tabular models.",
    )
    max_rows = models.PositiveIntegerField(default=5000, help_text="Reference and window are sampled down to this.")
    enabled = models.BooleanField(default=True, help_text="Scheduled checks skip a model that is switched off.")

    class Meta:
        verbose_name_plural = "drift settings"

    def __str__(self) -> str:
        return f"drift settings of {self.model.name}"

    @classmethod
    def models_to_check(cls) -> list[str]:
        """Names of the models a scheduled run checks: every one with a production version, unless switched off."""
        switched_off = cls.objects.filter(enabled=False).values_list("model_id", flat=True)
        in_production = RegisteredModel.objects.filter(versions__status=ModelVersion.Status.PRODUCTION)
        return list(in_production.exclude(pk__in=switched_off).values_list("name", flat=True).distinct())

    def config(self):
        """The settings as the ML core's DriftConfig (validated: a bad value raises InvalidInput)."""
        # Imported here: the drift core brings pandas, which web processes (they load every app's
        # models) never need.
        from mlops.monitoring.columns import DEFAULT_DRIFT_SHARE
        from mlops.monitoring.drift import DriftConfig

        share = self.drift_share if self.drift_share is not None else DEFAULT_DRIFT_SHARE[self.model.kind]
        return DriftConfig.from_mapping(
            {
                "min_samples": self.min_samples,
                "method": self.method or None,
                "threshold": self.threshold,
                "column_methods": self.column_methods or {},
                "column_thresholds": self.column_thresholds or {},
                "drift_share": share,
                "max_rows": self.max_rows,
            }
        )


class DriftReport(models.Model):
    """One drift check of one version: the window, each column's verdict, the flags, Evidently's report."""

    class Status(models.TextChoices):
        OK = "ok", "no drift"
        DRIFT = "drift", "drift"
        NOT_ENOUGH_DATA = "not_enough_data", "not enough data"
        FAILED = "failed", "check failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        COMMAND = "command"
        API = "api"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="drift_reports")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="drift_reports")
    status = models.CharField(max_length=20, choices=Status.choices)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.SCHEDULE)
    message = models.TextField(blank=True)
    window_start = models.DateTimeField(null=True, blank=True, help_text="Oldest prediction in the window.")
    window_end = models.DateTimeField(null=True, blank=True, help_text="Newest prediction in the window.")
    window = models.JSONField(default=dict, help_text="What was asked: predictions or hours.")
    reference_source = models.CharField(max_length=200, blank=True, help_text="Where the reference came from.")
    reference_size = models.PositiveIntegerField(default=0)
    current_size = models.PositiveIntegerField(default=0)
    drifted_share = models.FloatField(null=True, blank=True)
    dataset_drift = models.BooleanField(default=False)
    # One entry per column compared: column, kind, method, score, threshold, drifted.
    columns = models.JSONField(default=list)
    settings = models.JSONField(default=dict, help_text="The DriftConfig the check ran with.")
    html = models.FileField(max_length=255, blank=True, help_text="Evidently's HTML report.")
    duration_ms = models.FloatField(default=0.0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Dashboard and API: a model's (or a version's) latest reports, drift share over time.
            models.Index(fields=["model", "created_at"], name="drift_model_time_idx"),
            models.Index(fields=["version", "created_at"], name="drift_version_time_idx"),
        ]

    def __str__(self) -> str:
        return f"drift check of {self.version}: {self.get_status_display()}"

    @property
    def drifted(self) -> bool:
        return self.status == self.Status.DRIFT

    def drifted_columns(self) -> list[str]:
        return [column["column"] for column in self.columns if column.get("drifted")]


class PerformanceBucket(models.Model):
    """What one version did in one time bucket, rolled up from the prediction log (dashboards read these).

    Latency is server time per request (a tabular call of many records counts once); confidence is
    the best box's (detection) or the predicted class's (tabular, classification) probability;
    feedback counts the verdicts given during the bucket on this version's predictions.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="performance")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="performance")
    start = models.DateTimeField(help_text="Start of the bucket (UTC, aligned to its size).")
    seconds = models.PositiveIntegerField(default=60, help_text="Size of the bucket.")
    requests = models.PositiveIntegerField(default=0)
    predictions = models.PositiveIntegerField(default=0, help_text="Images or records answered.")
    errors = models.PositiveIntegerField(default=0)
    errors_by_code = models.JSONField(default=dict, blank=True)
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    latency_p99_ms = models.FloatField(null=True, blank=True)
    inference_mean_ms = models.FloatField(null=True, blank=True)
    confidence_mean = models.FloatField(null=True, blank=True)
    # Counts per tenth of confidence, [0, 0.1), ..., [0.9, 1.0]; and per predicted class name.
    confidence_histogram = models.JSONField(default=list, blank=True)
    class_counts = models.JSONField(default=dict, blank=True)
    feedback = models.PositiveIntegerField(default=0, help_text="Verdicts given (images and boxes).")
    feedback_correct = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.UniqueConstraint(fields=["version", "seconds", "start"], name="performance_one_row_per_bucket"),
        ]
        indexes = [
            # Dashboard: a model's buckets over a time range.
            models.Index(fields=["model", "seconds", "start"], name="performance_model_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.start:%Y-%m-%d %H:%M} ({self.requests} requests)"

    @property
    def error_rate(self) -> float | None:
        total = self.requests + self.errors
        return round(self.errors / total, 4) if total else None

    @property
    def accuracy(self) -> float | None:
        """Share of correct verdicts among the feedback of the bucket (None without feedback)."""
        return round(self.feedback_correct / self.feedback, 4) if self.feedback else None


class ShadowSettings(models.Model):
    """Whether a model's staging version also answers a sample of live predictions, off the request path."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="shadow_settings")
    enabled = models.BooleanField(
        default=False, help_text="Run the staging version on a sample of production's predictions and compare."
    )
    sample_rate = models.FloatField(
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of logged predictions (requests, for tabular calls of many records) compared, 0 to 1.",
    )

    class Meta:
        verbose_name_plural = "shadow settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(sample_rate__gte=0.0) & Q(sample_rate__lte=1.0), name="shadow_sample_rate_is_a_share"
            )
        ]

    def __str__(self) -> str:
        return f"shadow settings of {self.model.name}"


class ShadowComparison(models.Model):
    """One logged prediction answered again by the staging version, and how far the two answers are.

    Detection: one image; `compared` is max(production boxes, shadow boxes), `matched` the boxes
    matched one to one (same class, IoU >= 0.5), and the deltas are the shadow-minus-production
    confidence of the `pairs` matched boxes. Tabular: one request's records; `compared` the records,
    `matched` those with the same label, `mean_delta` the change of the probability of production's
    label and `mean_abs_delta` the mean absolute probability difference, over `pairs` (= records).
    Classification: one image; `compared` and `pairs` are 1, `matched` 1 when both versions chose the
    same top-1 class, `mean_delta` the change of the probability of production's class and
    `mean_abs_delta` the mean absolute probability difference over the classes.
    mlops.monitoring.shadow defines every number.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="shadow_comparisons")
    production_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    shadow_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="shadow_comparisons")
    prediction_ref = models.CharField(
        max_length=64,
        help_text="The Detection's or Classification's id, or the request id of the tabular records compared.",
    )
    compared = models.PositiveIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    agreement = models.FloatField(
        help_text="Box match share, label agreement or top-1 agreement of this prediction (0 to 1)."
    )
    pairs = models.PositiveIntegerField(default=0, help_text="How many pairs mean_delta averages over.")
    mean_delta = models.FloatField(
        null=True,
        blank=True,
        help_text="Shadow minus production: confidence of matched boxes, or probability of production's label "
        "(tabular) or class (classification).",
    )
    mean_abs_delta = models.FloatField(
        null=True,
        blank=True,
        help_text="The same in absolute value; tabular and classification: over every class's probability.",
    )
    details = models.JSONField(default=dict, blank=True, help_text="Everything the comparison computed.")
    shadow_ms = models.FloatField(default=0.0, help_text="The staging version's own predict time.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A redelivered task compares the same prediction again: the second row is refused.
            models.UniqueConstraint(fields=["shadow_version", "prediction_ref"], name="shadow_one_row_per_prediction"),
        ]
        indexes = [
            # Summary: the comparisons of one version pair since a moment.
            models.Index(fields=["shadow_version", "production_version", "created_at"], name="shadow_pair_time_idx"),
            # API and dashboard: a model's latest comparisons, its pairs over a period.
            models.Index(fields=["model", "created_at"], name="shadow_model_time_idx"),
        ]

    def __str__(self) -> str:
        return f"shadow {self.shadow_version_id} vs {self.production_version_id} on {self.prediction_ref}"
