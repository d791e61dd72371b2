"""The prediction log of image classifiers: one Classification row per image, and feedback on it.

Like detections, rows are evidence (never edited; only the stored files may go), every row names the
version that answered, and ids are random UUIDs working as capabilities: a classification id is
returned only to the caller who made it; lists need a login.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from backend.registry.models import ModelVersion
from backend.serving.models import ImagePrediction, PredictionBatch
from backend.serving.reviewers import is_trusted_reviewer, trusted_reviewers


class ClassificationBatch(PredictionBatch):
    """A batch of images for a classifier, each answered with its `top_k` best classes."""

    top_k = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: at most 5, as single uploads.")

    class Meta(PredictionBatch.Meta):
        verbose_name_plural = "classification batches"


class Classification(ImagePrediction):
    """One image run through a classifier: what answered, how fast, its best classes, and the image itself."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="classifications")
    batch = models.ForeignKey(
        ClassificationBatch, null=True, blank=True, on_delete=models.CASCADE, related_name="classifications"
    )
    # The top_k best: [{"class_id", "class_name", "probability"}], best first.
    classes = models.JSONField(default=list)
    # The whole probability vector, in the version's class order (sums to 1).
    probabilities = models.JSONField(default=list)
    class_name = models.CharField(max_length=100, help_text="The best class.")
    confidence = models.FloatField(help_text="The best class's probability.")
    top_k = models.PositiveIntegerField()

    class Meta(ImagePrediction.Meta):
        indexes = [
            # Retention: "images older than N days not yet deleted"; monitoring windows by time.
            models.Index(fields=["created_at"], name="classif_created_idx"),
            # Monitoring: a version's recent predictions (drift, latency percentiles).
            models.Index(fields=["model_version", "created_at"], name="classif_version_time_idx"),
            # Monitoring: a version's share of each predicted class over a window.
            models.Index(fields=["model_version", "class_name", "created_at"], name="classif_class_idx"),
            # Monitoring: a version's unsure answers ("top-1 below 0.5").
            models.Index(fields=["model_version", "confidence"], name="classif_confidence_idx"),
            # History: a user's or an anonymous session's latest classifications.
            models.Index(fields=["user", "created_at"], name="classif_user_time_idx"),
            models.Index(fields=["session_key", "created_at"], name="classif_session_time_idx"),
        ]

    def __str__(self) -> str:
        return f"classification {self.id} ({self.class_name} {self.confidence:.2f})"


class FeedbackQuerySet(models.QuerySet):
    def trusted(self) -> FeedbackQuerySet:
        """Verdicts whose author is trusted now (backend.serving.reviewers, the rule detection uses too)."""
        return self.filter(user__in=trusted_reviewers().values("pk"))

    def untrusted(self) -> FeedbackQuerySet:
        """Anonymous verdicts and those of people not (or no longer) trusted: kept, not taken as labels."""
        return self.exclude(user__in=trusted_reviewers().values("pk"))


class ClassificationFeedback(models.Model):
    """A person's verdict on a classification's best class, with the right class when it was wrong.

    Anyone holding the id may give feedback, so a verdict counts as a training label only when its
    author is a trusted reviewer (`trusted`); the others are kept and marked.
    """

    class Verdict(models.TextChoices):
        CORRECT = "correct"
        WRONG = "wrong"

    classification = models.ForeignKey(Classification, on_delete=models.CASCADE, related_name="feedback")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    # With a wrong verdict: the class the image really shows (one of the version's classes); empty: not said.
    correct_class = models.CharField(max_length=100, blank=True)
    comment = models.TextField(blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    session_key = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = FeedbackQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "classification feedback"
        constraints = [
            models.CheckConstraint(
                condition=Q(correct_class="") | Q(verdict="wrong"),
                name="classification_feedback_class_only_for_wrong",
            )
        ]
        indexes = [
            # Export and monitoring: the latest verdicts on a classification.
            models.Index(fields=["classification", "created_at"], name="classif_feedback_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} on {self.classification_id}"

    @property
    def trusted(self) -> bool:
        """Whether this verdict counts as a training label (its author is a trusted reviewer, now)."""
        return is_trusted_reviewer(self.user)
