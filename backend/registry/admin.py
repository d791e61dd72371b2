"""Admin: versions with status, label and key metrics; promote / roll back behind a confirmation page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html

from backend.core.panels import PROMOTION, panels
from backend.registry import services
from backend.registry.models import Deployment, ModelVersion, PromotionRequest, RegisteredModel
from mlops.exceptions import MlopsError


class DeploymentInline(admin.TabularInline):
    """The deployment history, newest first, read-only."""

    model = Deployment
    fk_name = "model"
    extra = 0
    can_delete = False
    ordering = ["-created_at", "-id"]
    fields = [
        "created_at",
        "action",
        "from_version",
        "to_version",
        "succeeded",
        "actor",
        "system",
        "approved_by",
        "reason",
        "error",
    ]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class VersionDeploymentInline(DeploymentInline):
    fk_name = "to_version"
    verbose_name_plural = "Deployments to this version"


class VersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    can_delete = False
    fields = ["version", "semantic_label", "status", "key_metrics_display", "created_at"]
    readonly_fields = fields
    show_change_link = True
    ordering = ["-version"]

    @admin.display(description="label")
    def semantic_label(self, obj) -> str:
        return obj.semantic_label

    @admin.display(description="key metrics")
    def key_metrics_display(self, obj) -> str:
        return _metrics_text(obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _metrics_text(version: ModelVersion) -> str:
    return "  ".join(f"{name} {value:.3f}" for name, value in version.key_metrics().items()) or "-"


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "production", "version_count", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    readonly_fields = ["name", "kind", "class_names", "feature_schema", "created_at", "updated_at"]
    inlines = [VersionInline, DeploymentInline]

    @admin.display(description="production")
    def production(self, obj) -> str:
        version = obj.production_version
        return f"{version.semantic_label} (#{version.version})" if version else "-"

    @admin.display(description="versions")
    def version_count(self, obj) -> int:
        return obj.versions.count()

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "version",
        "label",
        "status_badge",
        "key_metrics_display",
        "data_version_short",
        "created_at",
    ]
    list_filter = ["model", "status"]
    list_select_related = ["model"]
    ordering = ["model", "-version"]
    search_fields = ["model__name", "mlflow_run_id", "git_commit", "data_version"]
    readonly_fields = [
        "model",
        "version",
        "label",
        "status",
        "metrics",
        "comparison",
        "artifacts",
        "metadata",
        "source",
        "mlflow_run_id",
        "git_commit",
        "data_version",
        "config_hash",
        "package_versions",
        "load_error",
        "load_error_at",
        "artifacts_deleted_at",
        "created_at",
    ]
    fields = ["description", *readonly_fields]
    inlines = [VersionDeploymentInline]
    actions = ["promote_to_production", "roll_back", "move_to_staging", "approve_promotion"]

    @admin.display(description="label", ordering="major")
    def label(self, obj) -> str:
        return obj.semantic_label

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj) -> str:
        colours = {"production": "#1b7f3b", "staging": "#a36a00", "candidate": "#555", "archived": "#999"}
        return format_html('<b style="color:{}">{}</b>', colours.get(obj.status, "#555"), obj.status)

    @admin.display(description="key metrics")
    def key_metrics_display(self, obj) -> str:
        return _metrics_text(obj)

    @admin.display(description="data")
    def data_version_short(self, obj) -> str:
        return obj.data_version[:12]

    def has_add_permission(self, request) -> bool:
        return False

    def has_promote_permission(self, request) -> bool:
        return services.may_promote(request.user)

    # -- actions -----------------------------------------------------------------------------
    @admin.action(description="Promote to production", permissions=["promote"])
    def promote_to_production(self, request, queryset):
        versions = list(queryset.select_related("model"))
        if len(versions) != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return None
        version = versions[0]
        if settings.REGISTRY_REQUIRE_APPROVAL:
            title = "Request promotion to production (needs another staff user's approval)"
        else:
            title = "Promote to production"
        if "confirm" not in request.POST:
            current = version.model.production_version
            return self._confirmation(
                request, "promote_to_production", title, version, current, pins={"expected_from": current}
            )
        reason = request.POST.get("reason", "")
        if settings.REGISTRY_REQUIRE_APPROVAL:
            return self._run(
                request, version, lambda: services.request_promotion(version, user=request.user, reason=reason),
                f"Requested promotion of {version} to production: {reason}",
                f"Promotion of {version} requested; another staff user must approve it.",
            )  # fmt: skip
        return self._run(
            request, version,
            lambda: services.promote_version(
                version, actor=request.user, reason=reason,
                expected_from=_confirmed_version(request, "expected_from", version.model),
            ),
            f"Promoted {version} to production: {reason}", f"{version} is now in production.",
        )  # fmt: skip

    @admin.action(description="Approve requested promotion", permissions=["promote"])
    def approve_promotion(self, request, queryset):
        for version in queryset.select_related("model"):
            pending = services.pending_request(version)
            if pending is None:
                self.message_user(request, f"{version} has no pending promotion request.", messages.WARNING)
                continue
            self._run(
                request, version, lambda pending=pending: services.approve_promotion(pending, user=request.user),
                f"Approved promotion of {version} requested by {pending.requested_by}",
                f"{version} is now in production.",
            )  # fmt: skip

    @admin.action(description="Roll back to the previous production version", permissions=["promote"])
    def roll_back(self, request, queryset):
        models = {version.model for version in queryset.select_related("model")}
        if len(models) != 1:
            self.message_user(request, "Select versions of exactly one model to roll back.", messages.ERROR)
            return None
        model = models.pop()
        current, target = model.production_version, model.previous_production_version()
        if target is None:
            self.message_user(request, f"{model} has no earlier production version.", messages.ERROR)
            return None
        if "confirm" not in request.POST:
            pins = {"expected_from": current, "expected_to": target}
            return self._confirmation(request, "roll_back", f"Roll back {model}", target, current, pins=pins)
        reason = request.POST.get("reason", "")

        def roll_back():
            # What the page showed is what runs: from and to as confirmed, or nothing (production moved).
            pinned_from = _confirmed_version(request, "expected_from", model)
            pinned_to = _confirmed_version(request, "expected_to", model)
            return services.rollback_model(
                model, actor=request.user, reason=reason,
                expected_from=None if pinned_from is services.UNCHECKED else pinned_from,
                expected_to=None if pinned_to is services.UNCHECKED else pinned_to,
            )  # fmt: skip

        return self._run(
            request, target, roll_back,
            f"Rolled back {model} from {current} to {target}: {reason}", f"{model} rolled back to {target}.",
        )  # fmt: skip

    @admin.action(description="Move to staging", permissions=["promote"])
    def move_to_staging(self, request, queryset):
        for version in queryset.select_related("model"):
            self._run(
                request, version, lambda version=version: services.stage_version(version),
                f"Moved {version} to staging", f"{version} is now the staging version.",
            )  # fmt: skip

    def _run(self, request, version, operation, log_message: str, success_message: str):
        try:
            operation()
        except MlopsError as exc:
            self.message_user(request, f"Refused: {exc.message}", messages.ERROR)
            self.log_change(request, version, f"Refused: {log_message} ({exc.message})")
            return None
        self.log_change(request, version, log_message)
        self.message_user(request, success_message, messages.SUCCESS)
        return None

    def _confirmation(self, request, action: str, title: str, candidate, current, *, pins: dict):
        names = sorted(set(candidate.metrics) | set(current.metrics if current else {}))
        rows = [
            {
                "name": name,
                "candidate": candidate.metrics.get(name),
                "current": current.metrics.get(name) if current else None,
            }
            for name in names
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "action": action,
            "candidate": candidate,
            "current": current,
            "rows": rows,
            "opts": self.model._meta,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "approval_required": settings.REGISTRY_REQUIRE_APPROVAL and action == "promote_to_production",
            # Hidden fields: the versions this page shows, checked again when it is confirmed.
            "pins": [(name, version.pk if version else "") for name, version in pins.items()],
            # What apps above the registry add (monitoring: how the candidate did in shadow mode).
            "panels": panels(place=PROMOTION, model=candidate.model, version=candidate),
        }
        return TemplateResponse(request, "admin/registry/confirm_deployment.html", context)


def _confirmed_version(request, field: str, model: RegisteredModel):
    """The version a confirmation page pinned in a hidden field; None when it showed none, UNCHECKED when
    the POST has no such field (a hand-made request acts on the registry as it is then)."""
    if field not in request.POST:
        return services.UNCHECKED
    value = request.POST[field]
    if not value:
        return None
    version = model.versions.filter(pk=value).first() if value.isdigit() else None
    if version is None:
        raise services.RegistryConflict(f"the confirmed version #{value} is not a version of {model}")
    return version


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "model", "action", "from_version", "to_version", "succeeded", "actor", "system", "approved_by",
    ]  # fmt: skip
    list_filter = ["model", "action", "succeeded", "system"]
    list_select_related = ["model", "from_version", "to_version", "actor", "approved_by"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PromotionRequest)
class PromotionRequestAdmin(admin.ModelAdmin):
    list_display = ["created_at", "version", "requested_by", "status", "decided_by", "decided_at"]
    list_filter = ["status"]
    readonly_fields = ["version", "requested_by", "reason", "status", "decided_by", "decided_at", "deployment"]

    def has_add_permission(self, request) -> bool:
        return False
