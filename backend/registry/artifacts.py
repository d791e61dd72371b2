"""A version's serving files on local disk: fetched into the version's cache folder, sha256-verified."""

from __future__ import annotations

from pathlib import Path

from backend.core.mlops_config import mlops_config
from backend.registry.models import ModelVersion
from mlops.exceptions import NotFound
from mlops.inference.loader import SERVING_ROLES, serving_roles
from mlops.registry.artifacts import fetch_artifact


def serving_files(version: ModelVersion, *, every_role: bool = False) -> dict[str, Path]:
    """Local, verified paths of the files the version's predictor is built from.

    With `every_role`, every file a serving process could ever load for it (promotion verifies them
    all); otherwise only the ones it will load (ONNX when it has it). Raises NotFound when the
    version has none, or retention deleted them.
    """
    if version.artifacts_deleted_at:
        raise NotFound(f"{version}'s artifacts were deleted by retention.", code="artifact_missing")
    available = [role for role in SERVING_ROLES if version.artifact(role) is not None]
    roles = available if every_role else serving_roles(version.model.kind, available, version.metadata or {})
    if not serving_roles(version.model.kind, available, version.metadata or {}):
        raise NotFound(f"{version} has no servable artifact.", code="artifact_missing")
    cache_dir = mlops_config().version_cache_dir(version.model.name, version.version)
    return {role: fetch_artifact(version.artifact(role), cache_dir) for role in roles}
