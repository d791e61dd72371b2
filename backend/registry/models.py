"""The registry of record: models, their versions, and the history of what served in production.

MLflow holds the artifacts and mirrors the `production` / `staging` aliases; these rows decide.
The database itself guarantees at most one production version per model.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from mlops.exceptions import ModelNotFound
from mlops.registry.entities import Artifact, ModelKind

# The permission (ModelVersion.Meta) every change of what serves in production needs from a person.
PROMOTE_PERMISSION = "registry.promote_modelversion"

# The few metrics an admin compares at a glance, of detectors and tabular models alike.
KEY_METRICS = ("mAP50", "mAP50-95", "top1", "top5", "precision", "recall", "accuracy", "roc_auc", "f1", "log_loss")


def model_ref(name: str, version: int, label: str) -> dict:
    """How answers and prediction logs name the version that made a prediction."""
    return {"name": name, "version": version, "label": label}


class RegisteredModelQuerySet(models.QuerySet):
    def named(self, name: str) -> RegisteredModel:
        """The model registered under `name`; ModelNotFound (404 on the API) when there is none."""
        model = self.filter(name=name).first()
        if model is None:
            raise ModelNotFound(name)
        return model


class RegisteredModel(models.Model):
    class Kind(models.TextChoices):
        DETECTION = ModelKind.DETECTION, "Detection (YOLO)"
        TABULAR = ModelKind.TABULAR, "Tabular (XGBoost)"
        CLASSIFICATION = ModelKind.CLASSIFICATION, "Image classification (YOLO)"

    name = models.SlugField(max_length=100, unique=True, help_text="Same name as in MLflow's registry.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.TextField(blank=True)
    class_names = models.JSONField(default=list, blank=True)
    feature_schema = models.JSONField(default=list, blank=True, help_text="Tabular models: features in model order.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def production_version(self) -> ModelVersion | None:
        return self.versions.filter(status=ModelVersion.Status.PRODUCTION).first()

    def production_stack(self) -> list[int]:
        """Ids of the versions that served in production, oldest first, replayed from history.

        A promotion pushes its version; a rollback pops back to the one before. The last item is
        the current production version, the one before it is where a rollback goes.
        """
        stack: list[int] = []
        for deployment in self.deployments.filter(succeeded=True).order_by("created_at", "id"):
            if deployment.action == Deployment.Action.PROMOTE:
                stack.append(deployment.to_version_id)
            elif deployment.action in (Deployment.Action.ROLLBACK, Deployment.Action.AUTO_ROLLBACK):
                while stack and stack[-1] != deployment.to_version_id:
                    stack.pop()
                if not stack:
                    stack.append(deployment.to_version_id)
        return stack

    def previous_production_version(self) -> ModelVersion | None:
        stack = self.production_stack()
        return self.versions.filter(id=stack[-2]).first() if len(stack) >= 2 else None


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        STAGING = "staging"
        PRODUCTION = "production"
        ARCHIVED = "archived"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField(help_text="MLflow's version number.")
    major = models.PositiveIntegerField(default=1)
    minor = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CANDIDATE)
    description = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # Role -> {"uri", "sha256", "size", "filename"}; serving reads "onnx" (or "weights").
    artifacts = models.JSONField(default=dict, blank=True)
    # class_names, imgsz, architecture (detection); class_names, feature_schema (tabular).
    metadata = models.JSONField(default=dict, blank=True)
    # Evaluation against the production version of the time, on the same test split.
    comparison = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=500, blank=True, help_text="MLflow model URI.")
    # Lineage: the exact run, code, data and configuration that produced the version.
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    git_commit = models.CharField(max_length=64, blank=True)
    data_version = models.CharField(max_length=128, blank=True)
    config_hash = models.CharField(max_length=128, blank=True)
    package_versions = models.JSONField(default=dict, blank=True)
    # Set by a serving process that could not load this version (monitoring alerts on it).
    load_error = models.TextField(blank=True)
    load_error_at = models.DateTimeField(null=True, blank=True)
    artifacts_deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-version"]
        permissions = [("promote_modelversion", "Can promote and roll back model versions")]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="registry_unique_mlflow_version"),
            models.UniqueConstraint(fields=["model", "major", "minor"], name="registry_unique_semantic_label"),
            # The heart of the registry: the database refuses a second production version.
            models.UniqueConstraint(
                fields=["model"], condition=Q(status="production"), name="registry_one_production_per_model"
            ),
            models.UniqueConstraint(
                fields=["model"], condition=Q(status="staging"), name="registry_one_staging_per_model"
            ),
        ]
        indexes = [
            # Serving and the admin ask "which version of model M is in production?" constantly.
            models.Index(fields=["model", "status"], name="registry_version_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} {self.semantic_label} (#{self.version})"

    def ref(self) -> dict:
        return model_ref(self.model.name, self.version, self.semantic_label)

    @property
    def semantic_label(self) -> str:
        return f"v{self.major}.{self.minor}"

    def artifact(self, role: str) -> Artifact | None:
        data = self.artifacts.get(role)
        return Artifact.from_dict({"role": role, **data}) if data else None

    @property
    def lineage(self) -> dict:
        return {
            "mlflow_run_id": self.mlflow_run_id,
            "git_commit": self.git_commit,
            "data_version": self.data_version,
            "config_hash": self.config_hash,
            "packages": self.package_versions,
        }

    def key_metrics(self) -> dict[str, float]:
        """The few numbers an admin compares at a glance."""
        return {name: self.metrics[name] for name in KEY_METRICS if name in self.metrics}

    def interface_signature(self) -> tuple:
        """What a retrain must keep for a minor bump: classes and architecture (or features)."""
        meta = self.metadata or {}
        features = tuple(feature.get("name") for feature in meta.get("feature_schema", []))
        return (tuple(meta.get("class_names", [])), meta.get("architecture", ""), features)


class Deployment(models.Model):
    """One change of the production pointer, or a refused attempt, with who, why and the smoke test."""

    class Action(models.TextChoices):
        PROMOTE = "promote"
        ROLLBACK = "rollback"
        AUTO_ROLLBACK = "auto_rollback", "Automatic rollback"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="deployments")
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments_from"
    )
    to_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments_to"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Nobody asked: a command, a training job no person started, the automatic rollback (the reason says
    # which). A person's change names them in `actor`, checked for the promote permission first.
    system = models.BooleanField(default=False, help_text="Done by the product itself, not by a person.")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    succeeded = models.BooleanField(default=False)
    smoke_test = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The history inline and the rollback replay read a model's deployments in time order.
            models.Index(fields=["model", "created_at"], name="registry_deployment_time_idx"),
        ]

    def __str__(self) -> str:
        outcome = "ok" if self.succeeded else "refused"
        return f"{self.action} {self.model.name} -> {self.to_version and self.to_version.semantic_label} ({outcome})"


class PromotionRequest(models.Model):
    """With approval on, promotion to production needs a request by one staff user and approval by another."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        FAILED = "failed"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="promotion_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    deployment = models.OneToOneField(Deployment, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["version"], condition=Q(status="pending"), name="registry_one_pending_request_per_version"
            )
        ]

    def __str__(self) -> str:
        return f"promote {self.version} ({self.status})"
