"""Every change to the registry that spans rows goes through these functions.

Promotion and rollback share one path: verify the artifacts' sha256, load the model and run it
on a fixed sample (smoke test) outside any transaction; only then, in one transaction with the
rows locked, move the production pointer and write the Deployment row. The `version_promoted`
signal goes out on commit. A refused attempt changes nothing and leaves a failed Deployment row.

Who may: every way into production (admin, API, approvals, training jobs that promote their version,
commands, the automatic rollback) ends in `promote_version`, which checks the person asking
(`require_promote_permission`); no person (actor None) is the product itself, recorded as such
(`Deployment.system`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backend.core.mlops_config import mlops_config
from backend.registry.artifacts import serving_files
from backend.registry.models import (
    PROMOTE_PERMISSION,
    Deployment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from backend.registry.signals import promotion_requested, version_promoted, version_registered, version_staged
from mlops.exceptions import InvalidInput, MlopsError, NotFound, SmokeTestFailed
from mlops.inference.loader import load_predictor, smoke_test
from mlops.registry.entities import ModelVersionInfo
from mlops.registry.mlflow_store import MlflowModelRegistry
from mlops.registry.retention import select_for_deletion

logger = logging.getLogger(__name__)


def model_registry() -> MlflowModelRegistry:
    return MlflowModelRegistry(mlops_config())


class RegistryConflict(MlopsError):
    """The request contradicts the registry's state (already production, nothing to roll back to...)."""

    code = "registry_conflict"
    status = 409


class ApprovalRequired(MlopsError):
    code = "approval_required"
    status = 409


class PromotePermissionRequired(MlopsError):
    """A person without the registry's promote permission asked to change what serves in production."""

    code = "promote_permission_required"
    status = 403


# -- who may -------------------------------------------------------------------------------------
def may_promote(user) -> bool:
    """An active staff user holding the registry's promote permission (superusers hold every permission)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(PROMOTE_PERMISSION)
    )


def require_promote_permission(*people, doing: str = "change what serves in production") -> None:
    """PromotePermissionRequired unless every person named may promote; None (the system) always may."""
    for person in people:
        if person is not None and not may_promote(person):
            logger.warning("registry.promotion_forbidden user=%s doing=%s", person, doing)
            raise PromotePermissionRequired(
                f"{person} may not {doing}: that needs the registry's promote permission ({PROMOTE_PERMISSION}).",
                details={"user": str(person), "permission": PROMOTE_PERMISSION},
            )


# -- registering ---------------------------------------------------------------------------------
def record_version(info: ModelVersionInfo, *, metadata: dict | None = None, comparison: dict | None = None):
    """Create the ModelVersion row (and its RegisteredModel) for a version MLflow just registered."""
    metadata = metadata if metadata is not None else info.metadata
    with transaction.atomic():
        model, _ = RegisteredModel.objects.select_for_update().get_or_create(
            name=info.name, defaults={"kind": str(info.kind), "description": info.description}
        )
        if model.kind != str(info.kind):
            raise InvalidInput(f"model {info.name!r} is a {model.kind} model, not {info.kind}", code="kind_mismatch")
        version = ModelVersion(
            model=model,
            version=info.version,
            description=info.description,
            metrics=info.metrics,
            artifacts={role: _artifact_row(a) for role, a in info.artifacts.items()},
            metadata=metadata,
            comparison=comparison or {},
            source=info.source,
            mlflow_run_id=info.lineage.run_id or info.run_id,
            git_commit=info.lineage.git_commit,
            data_version=info.lineage.data_version,
            config_hash=info.lineage.config_hash,
            package_versions=info.lineage.packages,
        )
        version.major, version.minor = next_semantic_label(model, version)
        version.save()
        model.class_names = metadata.get("class_names", model.class_names)
        model.feature_schema = metadata.get("feature_schema", model.feature_schema)
        model.save(update_fields=["class_names", "feature_schema", "updated_at"])
        transaction.on_commit(lambda: version_registered.send(sender=ModelVersion, version=version))
    logger.info(
        "registry.version_recorded model=%s version=%s label=%s", model.name, info.version, version.semantic_label
    )
    return version


def _artifact_row(artifact) -> dict:
    data = artifact.to_dict()
    data.pop("role")
    return data


def next_semantic_label(model: RegisteredModel, version: ModelVersion) -> tuple[int, int]:
    """v1.0 first; a minor bump for a retrain with the same classes and architecture, else a major one."""
    latest = model.versions.exclude(pk=version.pk).order_by("-major", "-minor").first()
    if latest is None:
        return 1, 0
    if latest.interface_signature() == version.interface_signature():
        return latest.major, latest.minor + 1
    return latest.major + 1, 0


def register_from_files(
    name: str,
    kind: str,
    files: dict[str, Path],
    *,
    metrics: dict | None = None,
    metadata: dict | None = None,
    description: str = "",
) -> ModelVersion:
    """Log files to MLflow as a new version and record it (the `register_model` command)."""
    registry = model_registry()
    info = registry.register_version(name, kind, files, metrics=metrics, metadata=metadata, description=description)
    return record_version(info, metadata=registry.load_metadata(info))


# -- promotion and rollback ----------------------------------------------------------------------
def smoke_test_version(version: ModelVersion) -> dict:
    """Verify every serving artifact's sha256, load the model and run it on a fixed sample.

    Returns {"ok", "detail", "latency_ms"}; never raises for a bad model.
    """
    try:
        files = serving_files(version, every_role=True)
        predictor = load_predictor(version.model.kind, files, version.metadata, engine=settings.SERVING_ENGINE)
        result = smoke_test(predictor, version.metadata)
    except MlopsError as exc:
        return {"ok": False, "detail": f"{exc.code}: {exc.message}", "latency_ms": 0.0}
    except Exception as exc:  # noqa: BLE001  (any failure to load or run the model refuses the promotion)
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}", "latency_ms": 0.0}
    return asdict(result)


class _Unchecked:
    """The default of `expected_from`: the caller pins nothing (None would mean "no production version")."""

    def __repr__(self) -> str:
        return "UNCHECKED"


UNCHECKED = _Unchecked()


def promote_version(
    version: ModelVersion,
    *,
    actor=None,
    reason: str = "",
    action: str = Deployment.Action.PROMOTE,
    approved_by=None,
    expected_from: ModelVersion | _Unchecked | None = UNCHECKED,
) -> Deployment:
    """Make `version` its model's production version, or record why not and raise SmokeTestFailed.

    `actor` (and `approved_by`) are the people asking: each needs the promote permission, checked here
    for every path (PromotePermissionRequired). `actor=None` is the product acting by itself (a command,
    a training job no person started, the automatic rollback): allowed, and recorded as such.
    `expected_from` pins the production version the caller saw (None: none): when production moved
    meanwhile nothing changes and RegistryConflict (code "production_moved") says so.
    """
    require_promote_permission(actor, approved_by)
    if version.status == ModelVersion.Status.PRODUCTION:  # a stale copy is checked again under the lock
        raise RegistryConflict(f"{version} is already in production")
    if settings.REGISTRY_REQUIRE_APPROVAL and action == Deployment.Action.PROMOTE and approved_by is None:
        raise ApprovalRequired("promotion to production needs a request and an approval by another staff user")
    if expected_from is not UNCHECKED:  # refused before the smoke test too, not only under the lock
        _check_moved(version.model, version.model.production_version, expected_from)
    record = {"action": action, "actor": actor, "system": actor is None, "approved_by": approved_by, "reason": reason}
    return _deploy(version, record, expected_from=expected_from)


def rollback_model(
    model: RegisteredModel,
    *,
    actor=None,
    reason: str = "",
    automatic: bool = False,
    expected_from: ModelVersion | None = None,
    expected_to: ModelVersion | None = None,
) -> Deployment:
    """Put back the version that was in production before the current one (found from history).

    The same check as a promotion: `actor` needs the promote permission; None is the system. The
    rollback is pinned to the step it computed: when production moves before the switch (another
    promotion or rollback), it is refused (RegistryConflict, code "production_moved") instead of
    jumping back over the change. `expected_from` / `expected_to` pin the step the caller confirmed.
    """
    require_promote_permission(actor, doing="roll back a model")
    current, target = model.production_version, model.previous_production_version()
    if target is None:
        raise RegistryConflict(f"{model.name} has no earlier production version to roll back to")
    _check_moved(model, current, expected_from if expected_from is not None else UNCHECKED)
    if expected_to is not None and expected_to.pk != target.pk:
        raise _moved(f"{model.name} would now roll back to {target}, not to {expected_to}")
    action = Deployment.Action.AUTO_ROLLBACK if automatic else Deployment.Action.ROLLBACK
    record = {"action": action, "actor": actor, "system": actor is None, "approved_by": None, "reason": reason}
    return _deploy(target, record, expected_from=current, rollback=True)


def _moved(message: str) -> RegistryConflict:
    return RegistryConflict(f"production moved meanwhile: {message}; look again and retry", code="production_moved")


def _check_moved(model: RegisteredModel, current: ModelVersion | None, expected) -> None:
    if expected is UNCHECKED or _pk(current) == _pk(expected):
        return
    raise _moved(f"{model.name}'s production version is {current or 'none'}, not {expected or 'none'}")


def _pk(version: ModelVersion | None) -> int | None:
    return version.pk if version is not None else None


def _deploy(version: ModelVersion, record: dict, *, expected_from, rollback: bool = False) -> Deployment:
    """The shared path: the smoke test outside any transaction, then the switch under the lock."""
    record["smoke_test"] = smoke_test_version(version)
    if not record["smoke_test"]["ok"]:
        _refuse_promotion(version, record)
    deployment = _move_production_pointer(version, record, expected_from=expected_from, rollback=rollback)
    logger.info(
        "registry.promoted model=%s action=%s from=%s to=%s",
        version.model.name,
        record["action"],
        deployment.from_version and deployment.from_version.semantic_label,
        version.semantic_label,
    )
    return deployment


def _lock_model(model_id: int) -> RegisteredModel:
    """Every change of a model's versions takes its row first, so they queue here in one order.

    FOR NO KEY UPDATE: it serialises the registry's writers but lets rows that merely reference the
    model or a version (prediction logs, refused deployments) be inserted meanwhile.
    """
    return RegisteredModel.objects.select_for_update(no_key=True).get(pk=model_id)


def _refuse_promotion(version: ModelVersion, record: dict) -> None:
    """A failed smoke test: a failed Deployment row says why; production is not touched."""
    detail = record["smoke_test"]["detail"]
    with transaction.atomic():
        _lock_model(version.model_id)  # in the history's order, with the production of that moment
        deployment = Deployment.objects.create(
            model_id=version.model_id,
            from_version=ModelVersion.objects.filter(
                model_id=version.model_id, status=ModelVersion.Status.PRODUCTION
            ).first(),
            to_version=version,
            succeeded=False,
            error=f"smoke test failed: {detail}",
            **record,
        )
    logger.warning("registry.promotion_refused model=%s version=%s detail=%s", version.model.name, version, detail)
    raise SmokeTestFailed(f"{version} failed its smoke test: {detail}", details={"deployment": deployment.pk})


def _move_production_pointer(version: ModelVersion, record: dict, *, expected_from, rollback: bool) -> Deployment:
    """In one transaction with the rows locked: archive the old production version, mark the new one,
    write the Deployment row; `version_promoted` goes out on commit.

    What the caller decided from is checked again here, where nothing can move: the production version
    it expected (`expected_from`), and for a rollback, that history still steps back to `version`.
    """
    with transaction.atomic():
        # Lock the model row first: concurrent promotions of one model queue here.
        model = _lock_model(version.model_id)
        target = ModelVersion.objects.select_for_update(no_key=True).get(pk=version.pk)
        previous = (
            ModelVersion.objects.select_for_update(no_key=True)
            .filter(model_id=version.model_id, status=ModelVersion.Status.PRODUCTION)
            .first()
        )
        _check_moved(model, previous, expected_from)
        if rollback:
            now = model.previous_production_version()
            if _pk(now) != target.pk:
                raise _moved(f"{model.name} would now roll back to {now or 'nothing'}, not to {target}")
        if target.status == ModelVersion.Status.PRODUCTION:
            raise RegistryConflict(f"{target} is already in production")
        if target.artifacts_deleted_at:
            raise RegistryConflict(f"{target}'s artifacts were deleted by retention")
        if previous is not None:
            previous.status = ModelVersion.Status.ARCHIVED
            previous.save(update_fields=["status"])
        target.status = ModelVersion.Status.PRODUCTION
        target.load_error, target.load_error_at = "", None
        target.save(update_fields=["status", "load_error", "load_error_at"])
        deployment = Deployment.objects.create(
            model_id=version.model_id, from_version=previous, to_version=target, succeeded=True, **record
        )
        transaction.on_commit(
            lambda: version_promoted.send(sender=ModelVersion, version=target, previous=previous, deployment=deployment)
        )
    return deployment


# -- staging and approvals -----------------------------------------------------------------------
def stage_version(version: ModelVersion) -> ModelVersion:
    """Mark `version` as the model's staging version (one at a time); MLflow's alias follows.

    The status is read again under the model's lock: a copy read before a promotion would otherwise
    demote the production version and leave the model without one.
    """
    with transaction.atomic():
        _lock_model(version.model_id)
        current = ModelVersion.objects.select_related("model").get(pk=version.pk)
        if current.status == ModelVersion.Status.PRODUCTION:
            raise RegistryConflict(f"{current} is in production")
        ModelVersion.objects.filter(model_id=current.model_id, status=ModelVersion.Status.STAGING).exclude(
            pk=current.pk
        ).update(status=ModelVersion.Status.CANDIDATE)
        current.status = ModelVersion.Status.STAGING
        current.save(update_fields=["status"])
        transaction.on_commit(lambda: version_staged.send(sender=ModelVersion, version=current))
    version.status = current.status
    return current


def request_promotion(version: ModelVersion, *, user, reason: str = "") -> PromotionRequest:
    require_promote_permission(user, doing="request a promotion to production")
    if version.status == ModelVersion.Status.PRODUCTION:
        raise RegistryConflict(f"{version} is already in production")
    try:
        with transaction.atomic():
            request = PromotionRequest.objects.create(version=version, requested_by=user, reason=reason)
            transaction.on_commit(lambda: promotion_requested.send(sender=PromotionRequest, request=request))
            return request
    except IntegrityError as exc:
        raise RegistryConflict(f"{version} already has a pending promotion request") from exc


def approve_promotion(request: PromotionRequest, *, user) -> Deployment:
    """The second staff user approves; the promotion runs with both names on the record (both checked)."""
    require_promote_permission(user, doing="approve a promotion to production")
    if request.status != PromotionRequest.Status.PENDING:
        raise RegistryConflict(f"this request is {request.status}")
    if request.requested_by_id == user.pk:
        raise ApprovalRequired("the approval must come from a different staff user than the request")
    claimed = PromotionRequest.objects.filter(pk=request.pk, status=PromotionRequest.Status.PENDING).update(
        status=PromotionRequest.Status.APPROVED, decided_by=user, decided_at=timezone.now()
    )
    if claimed != 1:
        raise RegistryConflict("this request was decided by someone else meanwhile")
    try:
        deployment = promote_version(
            request.version, actor=request.requested_by, approved_by=user, reason=request.reason
        )
    except MlopsError:
        PromotionRequest.objects.filter(pk=request.pk).update(status=PromotionRequest.Status.FAILED)
        raise
    PromotionRequest.objects.filter(pk=request.pk).update(deployment=deployment)
    return deployment


def reject_promotion(request: PromotionRequest, *, user) -> None:
    claimed = PromotionRequest.objects.filter(pk=request.pk, status=PromotionRequest.Status.PENDING).update(
        status=PromotionRequest.Status.REJECTED, decided_by=user, decided_at=timezone.now()
    )
    if claimed != 1:
        raise RegistryConflict("this request is no longer pending")


def pending_request(version: ModelVersion) -> PromotionRequest | None:
    return version.promotion_requests.filter(status=PromotionRequest.Status.PENDING).first()


# -- MLflow mirror and retention -----------------------------------------------------------------
def sync_aliases(model_name: str) -> dict[str, int | None]:
    """Point MLflow's `production` and `staging` aliases at what the database says."""
    model = RegisteredModel.objects.filter(name=model_name).first()
    if model is None:
        logger.warning("registry.alias_sync_unknown_model model=%s", model_name)
        return {}
    wanted = {
        "production": model.versions.filter(status=ModelVersion.Status.PRODUCTION).values_list("version", flat=True),
        "staging": model.versions.filter(status=ModelVersion.Status.STAGING).values_list("version", flat=True),
    }
    registry = model_registry()
    result = {}
    for alias, versions in wanted.items():
        target = versions.first()
        if registry.alias_version(model_name, alias) != target:
            registry.set_alias(model_name, alias, target)
        result[alias] = target
    return result


def versions_to_purge(model: RegisteredModel, keep_latest: int) -> list[ModelVersion]:
    """Versions whose artifacts retention may delete: never production, the one before it, or staging."""
    stack = model.production_stack()
    protected = set(stack[-2:])
    protected.update(
        model.versions.filter(status__in=[ModelVersion.Status.PRODUCTION, ModelVersion.Status.STAGING]).values_list(
            "id", flat=True
        )
    )
    protected.update(
        model.versions.filter(promotion_requests__status=PromotionRequest.Status.PENDING).values_list("id", flat=True)
    )
    live = list(model.versions.filter(artifacts_deleted_at__isnull=True).order_by("version"))
    doomed = set(select_for_deletion([v.id for v in live], protected=protected, keep_latest=keep_latest))
    return [v for v in live if v.id in doomed]


def purge_version_artifacts(version: ModelVersion) -> None:
    try:
        model_registry().delete_version_artifacts(version.model.name, version.version)
    except NotFound:
        logger.warning("registry.purge_missing model=%s version=%s", version.model.name, version.version)
    ModelVersion.objects.filter(pk=version.pk).update(artifacts_deleted_at=timezone.now())
