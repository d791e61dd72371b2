"""The prediction log of detectors: one Detection row per image, feedback on it, and upload batches.

Rows are never deleted by retention: only the stored image files go (PREDICTION_IMAGE_RETENTION_DAYS),
so monitoring keeps every prediction's version, latency, outputs and input features. Ids are random
UUIDs: a detection or batch id is returned only to the caller who created it and works as a
capability (like an unlisted link); lists of detections need a login.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from backend.registry.models import ModelVersion
from backend.serving.models import ImagePrediction, PredictionBatch
from backend.serving.reviewers import is_trusted_reviewer, trusted_reviewers


class Batch(PredictionBatch):
    """A batch of images for a detector, with the thresholds every image is detected at."""

    conf = models.FloatField()
    iou = models.FloatField()
    max_det = models.PositiveIntegerField()

    class Meta(PredictionBatch.Meta):
        verbose_name_plural = "batches"


class Detection(ImagePrediction):
    """One image run through a detector: what answered, how fast, what it found, and the image itself."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="detections")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="detections")
    # [{"xyxy", "xyxyn", "class_id", "class_name", "confidence"}], best first.
    boxes = models.JSONField(default=list)
    box_count = models.PositiveIntegerField(default=0)
    max_confidence = models.FloatField(null=True, blank=True)
    conf = models.FloatField()
    iou = models.FloatField()
    max_det = models.PositiveIntegerField()

    class Meta(ImagePrediction.Meta):
        indexes = [
            # Retention: "images older than N days not yet deleted"; monitoring windows by time.
            models.Index(fields=["created_at"], name="detection_created_idx"),
            # Monitoring: a version's recent predictions (drift, latency percentiles).
            models.Index(fields=["model_version", "created_at"], name="detection_version_time_idx"),
            # History pages: a user's or an anonymous session's latest detections.
            models.Index(fields=["user", "created_at"], name="detection_user_time_idx"),
            models.Index(fields=["session_key", "created_at"], name="detection_session_time_idx"),
        ]

    def __str__(self) -> str:
        return f"detection {self.id} ({self.box_count} boxes)"


# Whose verdicts become training labels: backend.serving.reviewers (the rule classification shares);
# the permission it names is declared on Feedback below.
class FeedbackQuerySet(models.QuerySet):
    def trusted(self) -> FeedbackQuerySet:
        """Verdicts whose author is trusted now: withdrawing someone's trust withdraws their labels too."""
        return self.filter(user__in=trusted_reviewers().values("pk"))

    def untrusted(self) -> FeedbackQuerySet:
        """Anonymous verdicts and those of people not (or no longer) trusted: kept, never exported by default."""
        return self.exclude(user__in=trusted_reviewers().values("pk"))


class Feedback(models.Model):
    """A person's verdict on a detection (box_index None) or on one box, with the right class if wrong.

    For a whole image, `min_confidence` is the threshold the person looked at: "correct" means the
    boxes at or above it are right and nothing is missing. `export_feedback` turns these rows into
    YOLO-format labels for retraining, from trusted reviewers only unless asked otherwise: anyone
    may give feedback (the upload page is open), so an anonymous verdict is kept and marked, not
    taken as ground truth.
    """

    class Verdict(models.TextChoices):
        CORRECT = "correct"
        WRONG = "wrong"

    detection = models.ForeignKey(Detection, on_delete=models.CASCADE, related_name="feedback")
    box_index = models.PositiveIntegerField(null=True, blank=True, help_text="Index in detection.boxes; empty: image.")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    # A wrong box with a class: the object is right, the class was not. Without one: not an object.
    correct_class_id = models.PositiveIntegerField(null=True, blank=True)
    correct_class_name = models.CharField(max_length=100, blank=True)
    min_confidence = models.FloatField(null=True, blank=True)
    comment = models.TextField(blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    session_key = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = FeedbackQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "feedback"
        permissions = [("trusted_feedback", "Feedback counts as training labels (exported for retraining)")]
        constraints = [
            models.CheckConstraint(
                condition=Q(correct_class_id__isnull=True) | Q(verdict="wrong", box_index__isnull=False),
                name="detection_feedback_class_only_for_wrong_box",
            )
        ]
        indexes = [
            # Export and monitoring: the latest verdicts on a detection.
            models.Index(fields=["detection", "box_index", "created_at"], name="detection_feedback_idx"),
        ]

    def __str__(self) -> str:
        target = "image" if self.box_index is None else f"box {self.box_index}"
        return f"{self.verdict} on {target} of {self.detection_id}"

    @property
    def trusted(self) -> bool:
        """Whether this verdict counts as a training label (its author is a trusted reviewer, now)."""
        return is_trusted_reviewer(self.user)
