"""Alerting rows: rules and the alerts they open, silences, channels, and the outbox of notifications.

The state machine of an alert is pure (mlops.alerting.rules); these rows hold its state, and each
delivery is a Notification row sent by a Celery task, so nothing is lost when a channel is down.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from backend.registry.models import RegisteredModel
from mlops.alerting.rules import OPEN_STATES, AlertState, Comparison, Condition


class Severity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @classmethod
    def rank(cls, value: str) -> int:
        return [cls.INFO, cls.WARNING, cls.CRITICAL].index(value)


class Channel(models.Model):
    """Where notifications go: a log, an email list or a webhook, configured here and nowhere else."""

    class Kind(models.TextChoices):
        LOG = "log"
        EMAIL = "email"
        WEBHOOK = "webhook"

    class Event(models.TextChoices):
        VERSION_REGISTERED = "version.registered", "version registered"
        VERSION_STAGED = "version.staged", "version staged"
        VERSION_PROMOTED = "version.promoted", "version promoted"
        VERSION_ROLLED_BACK = "version.rolled_back", "version rolled back"
        PROMOTION_REQUESTED = "promotion.requested", "promotion approval requested"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text='email: {"to": ["ops@example.com"]}; webhook: {"url": "https://...", "format": "json" or '
        '"slack", "timeout": 5}; log: {}.',
    )
    secret = models.CharField(
        max_length=200, blank=True, help_text="Webhook only: signs each body (X-Modelyard-Signature, HMAC-SHA256)."
    )
    alerts = models.BooleanField(default=True, help_text="Receives alerts (firing and resolved).")
    min_severity = models.CharField(max_length=20, choices=Severity.choices, default=Severity.INFO)
    events = models.JSONField(
        default=list,
        blank=True,
        help_text="Registry events this channel subscribes to: " + ", ".join(Event.values) + ".",
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def takes_alert(self, severity: str) -> bool:
        return self.enabled and self.alerts and Severity.rank(severity) >= Severity.rank(self.min_severity)

    def takes_event(self, event: str) -> bool:
        return self.enabled and event in (self.events or [])


class AlertRule(models.Model):
    """What is watched, against which threshold, for how long, how loudly, and how often it may fire."""

    class Kind(models.TextChoices):
        DRIFT = "drift", "drift detected (latest check, 1 or 0)"
        LATENCY_P95 = "latency_p95", "latency p95 (ms)"
        ERROR_RATE = "error_rate", "error rate (share of requests)"
        CONFIDENCE = "confidence", "average confidence"
        ACCURACY = "accuracy", "accuracy from feedback"
        TRAINING_FAILED = "training_failed", "training jobs failed"
        AUTO_ROLLBACK = "auto_rollback", "automatic rollbacks"
        REVIEW = "review", "retrained versions waiting for review"
        LOAD_FAILED = "load_failed", "production version failed to load (1 or 0)"
        DISK_FREE = "disk_free", "free disk space under var/ and media (%)"
        MONITOR_STOPPED = "monitor_stopped", "minutes since the monitor last ran"

    # Kinds judged per model; the others (disk, the monitor itself) once for the installation.
    PER_MODEL = frozenset(Kind) - {Kind.DISK_FREE, Kind.MONITOR_STOPPED}

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    description = models.TextField(blank=True)
    comparison = models.CharField(max_length=2, choices=[(c.value, c.value) for c in Comparison], default=">")
    threshold = models.FloatField()
    window_minutes = models.PositiveIntegerField(default=10, help_text="How far back the metric is read.")
    for_minutes = models.PositiveIntegerField(
        default=0, help_text="The breach must last this long before the alert fires (0: at once)."
    )
    cooldown_minutes = models.PositiveIntegerField(
        default=30, help_text="After a resolution, a new breach within this time reopens quietly."
    )
    min_samples = models.PositiveIntegerField(
        default=0, help_text="Below this many requests (or feedback verdicts) in the window, nothing is judged."
    )
    severity = models.CharField(max_length=20, choices=Severity.choices, default=Severity.WARNING)
    model = models.ForeignKey(
        RegisteredModel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="Blank: every model with a production version.",
    )
    channels = models.ManyToManyField(
        Channel, blank=True, related_name="rules", help_text="Blank: every enabled channel that takes alerts."
    )
    enabled = models.BooleanField(default=True)
    builtin = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def condition(self) -> Condition:
        return Condition.build(
            self.comparison,
            self.threshold,
            for_seconds=self.for_minutes * 60,
            cooldown_seconds=self.cooldown_minutes * 60,
        )

    @property
    def per_model(self) -> bool:
        return self.kind in self.PER_MODEL

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)


class AlertQuerySet(models.QuerySet):
    def open(self):
        return self.filter(state__in=OPEN_STATES)


class Alert(models.Model):
    """One episode of a rule breaching for one scope (a model, or "" for the installation)."""

    class State(models.TextChoices):
        PENDING = AlertState.PENDING.value
        FIRING = AlertState.FIRING.value
        ACKNOWLEDGED = AlertState.ACKNOWLEDGED.value
        RESOLVED = AlertState.RESOLVED.value

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    model = models.ForeignKey(RegisteredModel, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    scope = models.CharField(max_length=200, blank=True, help_text="The model's name; blank: the installation.")
    state = models.CharField(max_length=20, choices=State.choices)
    severity = models.CharField(max_length=20, choices=Severity.choices)
    value = models.FloatField(null=True, blank=True, help_text="The latest reading of the rule's metric.")
    threshold = models.FloatField()
    summary = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True, help_text="Drift report, metric window, job...")
    started_at = models.DateTimeField(default=timezone.now, help_text="When the breach was first seen.")
    fired_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(default=timezone.now, help_text="The latest evaluation that saw it.")
    reopened = models.PositiveIntegerField(default=0, help_text="Breaches again within the cooldown (flapping).")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Blank on a resolved alert: it resolved by itself when the condition cleared.",
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "scope"],
                condition=Q(state__in=[s.value for s in OPEN_STATES]),
                name="alert_one_open_per_rule_and_scope",
            ),
        ]
        indexes = [
            # The API and dashboard: alerts by state, newest first; a model's alert history.
            models.Index(fields=["state", "started_at"], name="alert_state_time_idx"),
            models.Index(fields=["model", "started_at"], name="alert_model_time_idx"),
        ]

    def __str__(self) -> str:
        where = self.scope or "installation"
        return f"{self.rule.name} on {where} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


class Silence(models.Model):
    """Mute a rule, a model, or both until a time, as in Alertmanager: alerts still open, nothing is sent."""

    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences")
    model = models.ForeignKey(RegisteredModel, null=True, blank=True, on_delete=models.CASCADE, related_name="silences")
    ends_at = models.DateTimeField()
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-ends_at"]

    def __str__(self) -> str:
        what = " / ".join(filter(None, [self.rule and self.rule.name, self.model and self.model.name])) or "everything"
        return f"silence of {what} until {self.ends_at:%Y-%m-%d %H:%M}"

    @classmethod
    def muting(cls, alert: Alert, now=None):
        """The active silence that mutes `alert`, or None."""
        now = now or timezone.now()
        return (
            cls.objects.filter(ends_at__gt=now, created_at__lte=now)
            .filter(Q(rule__isnull=True) | Q(rule_id=alert.rule_id))
            .filter(Q(model__isnull=True) | Q(model_id=alert.model_id))
            .first()
        )


class Notification(models.Model):
    """One delivery to one channel: the outbox row a Celery task claims, sends, and retries with backoff."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed", "failed permanently"
        SUPPRESSED = "suppressed", "suppressed by a silence"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=40, help_text="alert.firing, alert.resolved, alert.test, version.promoted...")
    title = models.CharField(max_length=300)
    message = models.JSONField(default=dict, help_text="What is delivered (the channel formats it).")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    detail = models.TextField(blank=True, help_text="What the channel answered.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweep: pending deliveries whose next attempt is due.
            models.Index(fields=["status", "next_attempt_at"], name="notification_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel.name}: {self.status}"


class RollbackPolicy(models.Model):
    """When a promotion is watched and how much worse than its predecessor it may be before it is
    rolled back by itself. One row per model; the row without a model applies to the others."""

    model = models.OneToOneField(
        RegisteredModel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="rollback_policy",
        help_text="Blank: every model without a policy of its own.",
    )
    enabled = models.BooleanField(default=True)
    watch_minutes = models.PositiveIntegerField(default=30, help_text="How long after a promotion it is watched.")
    judge_minutes = models.PositiveIntegerField(
        default=2, help_text="Each look reads this much of the latest traffic (since the promotion at most)."
    )
    baseline_minutes = models.PositiveIntegerField(
        default=60, help_text="The previous version's baseline: its last this-many minutes in production."
    )
    min_requests = models.PositiveIntegerField(default=10, help_text="Below this, a look judges nothing.")
    error_rate_margin = models.FloatField(
        default=0.05, help_text="Roll back above the previous version's error rate plus this."
    )
    latency_ratio = models.FloatField(default=2.0, help_text="Roll back above the previous version's p95 times this.")
    latency_grace_seconds = models.PositiveIntegerField(
        default=120,
        help_text="Latency is judged only this long after the promotion: the first answers of a fresh version "
        "wait for it to load and warm up. Errors are judged from the first second.",
    )

    class Meta:
        verbose_name_plural = "rollback policies"

    def __str__(self) -> str:
        return f"rollback policy of {self.model.name if self.model else 'every model'}"

    @classmethod
    def for_model(cls, model: RegisteredModel) -> RollbackPolicy | None:
        """The model's own policy, else the default one; None when none applies or it is switched off."""
        policy = cls.objects.filter(model=model).first() or cls.objects.filter(model__isnull=True).first()
        return policy if policy is not None and policy.enabled else None

    def limits(self, *, judge_latency: bool = True):
        from mlops.alerting.release import ReleaseLimits

        return ReleaseLimits(
            min_requests=self.min_requests,
            error_rate_margin=self.error_rate_margin,
            latency_ratio=self.latency_ratio if judge_latency else None,
        )


class DeploymentWatch(models.Model):
    """The watch over one promotion: the previous version's baseline, each look's verdict, the outcome."""

    class State(models.TextChoices):
        WATCHING = "watching"
        PASSED = "passed", "passed (watch ended)"
        ROLLED_BACK = "rolled_back", "rolled back"
        SUPERSEDED = "superseded", "superseded by another deployment"

    deployment = models.OneToOneField("registry.Deployment", on_delete=models.CASCADE, related_name="watch")
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="watches")
    state = models.CharField(max_length=20, choices=State.choices, default=State.WATCHING)
    started_at = models.DateTimeField(help_text="When the promotion took effect.")
    ends_at = models.DateTimeField()
    baseline = models.JSONField(default=dict, help_text="The previous version's traffic before the promotion.")
    latest = models.JSONField(default=dict, blank=True, help_text="The latest look: traffic and verdict.")
    checks = models.PositiveIntegerField(default=0)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    rollback = models.OneToOneField(
        "registry.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="rolled_back_watch"
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # The sweep: watches still running.
            models.Index(fields=["state", "ends_at"], name="watch_state_idx"),
        ]

    def __str__(self) -> str:
        return f"watch of {self.deployment.to_version} ({self.state})"


class TrainingPolicy(models.Model):
    """Continuous training of one model: what starts a retraining, with what, and whether the result
    may replace production by itself (only when it beats it on the same holdout by the margin)."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="training_policy")
    enabled = models.BooleanField(default=True)
    on_drift = models.BooleanField(default=True, help_text="Retrain when a drift check flags drift.")
    feedback_samples = models.PositiveIntegerField(
        default=0,
        help_text="Retrain once this many new verdicts of trusted reviewers came in since the last one (0: off).",
    )
    every_hours = models.PositiveIntegerField(default=0, help_text="Retrain on a schedule, every N hours (0: off).")
    on_performance_drop = models.BooleanField(
        default=False, help_text="Retrain when an accuracy, confidence or error-rate alert fires for the model."
    )
    dataset = models.CharField(max_length=500, blank=True, help_text="Blank: the kind's default dataset.")
    params = models.JSONField(default=dict, blank=True, help_text="Trainer overrides, as for a training job.")
    auto_promote = models.BooleanField(
        default=True, help_text="Promote the new version when it wins by the margin; otherwise stage it for review."
    )
    promote_margin = models.FloatField(
        default=0.0, help_text="How much the primary metric must beat production's by, on the same holdout."
    )
    quiet_hours = models.FloatField(default=6.0, help_text="At least this long between two retrainings.")
    last_triggered_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey(
        "training.TrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_outcome = models.TextField(blank=True, help_text="What the latest trigger did, or why it did nothing.")

    class Meta:
        verbose_name_plural = "training policies"

    def __str__(self) -> str:
        return f"training policy of {self.model.name}"
