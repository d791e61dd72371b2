"""The model registry, backed by MLflow's tracking and model registry stores.

A version is an MLflow model version whose logged model carries the MLflow flavour (ONNX for
detectors, xgboost for tabular models, each with a signature, so `mlflow.pyfunc.load_model(
"models:/NAME@production")` works) plus our files under `extra_files/`, each with its sha256
recorded on the version. Aliases (`production`, `staging`) move; artifacts never do.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from mlops.config import MlopsConfig
from mlops.exceptions import InvalidInput, NotFound, StoreUnavailable
from mlops.registry.artifacts import fetch_artifact, local_path_of, sha256_file
from mlops.registry.entities import (
    PRODUCTION_ALIAS,
    Artifact,
    ArtifactRole,
    Lineage,
    ModelKind,
    ModelVersionInfo,
)

logger = logging.getLogger(__name__)

TAG_KIND = "modelyard.kind"
TAG_ARTIFACTS = "modelyard.artifacts"
TAG_LINEAGE = "modelyard.lineage"
TAG_METRICS = "modelyard.metrics"
TAG_PURGED = "modelyard.artifacts_deleted"
METADATA_FILE = "metadata.json"

# The file name each role gets inside the version's extra_files/ folder.
_FILENAMES = {
    ArtifactRole.WEIGHTS: "weights.pt",
    ArtifactRole.ONNX: "model.onnx",
    ArtifactRole.XGBOOST: "xgboost.json",
    ArtifactRole.FEATURE_SCHEMA: "feature_schema.json",
    ArtifactRole.DATA_MANIFEST: "data_manifest.json",
    ArtifactRole.VALIDATION_REPORT: "validation_report.json",
}


def _filename_for(role: str, source: Path) -> str:
    return _FILENAMES.get(role, f"{role}{''.join(source.suffixes) or source.suffix}")


class MlflowModelRegistry:
    """Register, look up, alias, fetch and purge model versions in MLflow."""

    def __init__(self, config: MlopsConfig):
        self.config = config
        self._client = None

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            self.config.apply_process_env()
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.config.tracking_uri, registry_uri=self.config.registry_uri)
        return self._client

    def experiment_id(self, name: str | None = None) -> str:
        """The id of our experiment, created with its artifacts under the configured root (no root: where
        the tracking server puts them)."""
        from mlflow.exceptions import MlflowException

        name = name or self.config.experiment
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        root = self.config.artifact_root.rstrip("/")
        location = None
        if root:
            location = f"{Path(root).resolve().as_uri() if local_path_of(root) is not None else root}/{name}"
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # Another process created it between our lookup and create.
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def ensure_registered_model(self, name: str, kind: ModelKind, description: str = "") -> None:
        from mlflow.exceptions import MlflowException

        try:
            existing = self.client.get_registered_model(name)
        except MlflowException:
            existing = None
        if existing is None:
            try:
                self.client.create_registered_model(name, tags={TAG_KIND: str(kind)}, description=description or None)
                return
            except MlflowException:
                existing = self.client.get_registered_model(name)
        known_kind = existing.tags.get(TAG_KIND)
        if known_kind and known_kind != str(kind):
            raise InvalidInput(f"model {name!r} is a {known_kind} model, not {kind}", code="kind_mismatch")

    # -- registering -------------------------------------------------------------------------
    def register_version(
        self,
        name: str,
        kind: ModelKind | str,
        files: dict[str, Path | str],
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, object] | None = None,
        metadata: dict | None = None,
        lineage: Lineage | None = None,
        run_id: str | None = None,
        description: str = "",
    ) -> ModelVersionInfo:
        """Log `files` (role -> local path) as a new version of `name` and return it.

        Detection needs an ONNX file or .pt weights; tabular needs the XGBoost JSON model and
        its feature schema (ONNX is derived when absent). Logs into `run_id` when given (the
        training run), else into a new run.
        """
        kind = ModelKind(kind)
        files = _existing_files(files)
        metadata = dict(metadata or {})
        metrics = {key: float(value) for key, value in (metrics or {}).items()}
        self.ensure_registered_model(name, kind)

        with tempfile.TemporaryDirectory(prefix="register-") as staging_dir:
            staging = Path(staging_dir)
            files, metadata = self._complete_files(kind, files, metadata, staging)
            staged, metadata_path = _stage_files(files, metadata, staging)
            model_info, run_id = self._log_model(
                kind, staged, metadata, metadata_path, run_id=run_id, params=params, metrics=metrics
            )
            artifacts = self._artifact_records(model_info.model_id, {**staged, "metadata": metadata_path})

        version = self._create_version(name, kind, model_info, run_id, artifacts, lineage, metrics, description)
        logger.info("registry.version_registered name=%s version=%s run=%s", name, version.version, run_id)
        return self._to_info(version, metadata=metadata)

    def _complete_files(self, kind: ModelKind, files: dict[str, Path], metadata: dict, staging: Path):
        """Check the kind's required files; a tabular version gets its schema and ONNX derived."""
        if kind is ModelKind.TABULAR:
            return self._prepare_tabular(files, metadata, staging)
        if ArtifactRole.ONNX not in files and ArtifactRole.WEIGHTS not in files:
            raise InvalidInput("a detection version needs ONNX or .pt weights", code="artifact_missing")
        return files, metadata

    def _log_model(
        self,
        kind: ModelKind,
        staged: dict[str, Path],
        metadata: dict,
        metadata_path: Path,
        *,
        run_id: str | None,
        params: dict[str, object] | None,
        metrics: dict[str, float],
    ):
        """Log the flavour into `run_id`, or into a new run holding params and metrics: (model info, run id)."""
        import mlflow

        mlflow.set_tracking_uri(self.config.tracking_uri)
        mlflow.set_registry_uri(self.config.registry_uri)
        extra = [*staged.values(), metadata_path]
        run_kwargs = {"run_id": run_id} if run_id else {"experiment_id": self.experiment_id()}
        with mlflow.start_run(**run_kwargs, nested=mlflow.active_run() is not None) as run:
            if not run_id:
                mlflow.set_tags({"modelyard.registered_from": "files", TAG_KIND: str(kind)})
                if params:
                    mlflow.log_params({key: str(value)[:500] for key, value in params.items()})
                if metrics:
                    mlflow.log_metrics(metrics)
            model_info = self._log_flavour(kind, staged, metadata, extra)
            return model_info, run.info.run_id

    def _artifact_records(self, model_id: str, staged: dict[str, Path]) -> dict[str, Artifact]:
        """Where each staged file now lives under the logged model, with the sha256 serving verifies."""
        location = self.client.get_logged_model(model_id).artifact_location.rstrip("/")
        return {
            role: Artifact(
                role=role,
                uri=f"{location}/extra_files/{path.name}",
                sha256=sha256_file(path),
                size=path.stat().st_size,
                filename=path.name,
            )
            for role, path in staged.items()
        }

    def _create_version(
        self,
        name: str,
        kind: ModelKind,
        model_info,
        run_id: str,
        artifacts: dict[str, Artifact],
        lineage: Lineage | None,
        metrics: dict[str, float],
        description: str,
    ):
        """The registry's version of the logged model, tagged with what _to_info reads back."""
        lineage = lineage or Lineage()
        if not lineage.run_id:
            lineage = Lineage(**{**lineage.to_dict(), "run_id": run_id})
        tags = {
            TAG_KIND: str(kind),
            TAG_ARTIFACTS: json.dumps({role: a.to_dict() for role, a in artifacts.items()}),
            TAG_LINEAGE: json.dumps(lineage.to_dict()),
            TAG_METRICS: json.dumps(metrics),
        }
        return self.client.create_model_version(
            name,
            model_info.model_uri,
            run_id=run_id,
            tags=tags,
            description=description or None,
            model_id=model_info.model_id,
        )

    def _prepare_tabular(self, files: dict[str, Path], metadata: dict, staging: Path):
        """Require the XGBoost model and its schema; write the schema file and derive ONNX when absent."""
        if ArtifactRole.XGBOOST not in files:
            raise InvalidInput("a tabular version needs the XGBoost JSON model", code="artifact_missing")
        schema = metadata.get("feature_schema")
        if schema is None and ArtifactRole.FEATURE_SCHEMA in files:
            schema = json.loads(files[ArtifactRole.FEATURE_SCHEMA].read_text())
        if not schema:
            raise InvalidInput("a tabular version needs its feature schema", code="feature_schema_missing")
        metadata = {**metadata, "feature_schema": schema}
        files = dict(files)
        if ArtifactRole.FEATURE_SCHEMA not in files:
            files[ArtifactRole.FEATURE_SCHEMA] = staging / "feature_schema.json"
            files[ArtifactRole.FEATURE_SCHEMA].write_text(json.dumps(schema, indent=2))
        if ArtifactRole.ONNX not in files:
            from mlops.inference.convert import xgboost_json_to_onnx

            files[ArtifactRole.ONNX] = xgboost_json_to_onnx(
                files[ArtifactRole.XGBOOST], len(schema), staging / "converted.onnx"
            )
        return files, metadata

    def _log_flavour(self, kind: ModelKind, staged: dict[str, Path], metadata: dict, extra: list[Path]):
        """Log the MLflow flavour (with signature) that people who only know MLflow can load."""
        if kind is ModelKind.TABULAR:
            return _log_xgboost(staged[ArtifactRole.XGBOOST], metadata["feature_schema"], extra)
        if ArtifactRole.ONNX in staged:
            return _log_onnx(staged[ArtifactRole.ONNX], extra)
        return self._log_files_only(extra)

    def _log_files_only(self, extra: list[Path]) -> _LoggedModelRef:
        """Weights only: no MLflow flavour loads a raw Ultralytics checkpoint without pickle, so log the files."""
        import mlflow

        with tempfile.TemporaryDirectory() as empty:
            model = mlflow.initialize_logged_model(name="model", model_type="ultralytics-pt")
            target = Path(empty) / "extra_files"
            target.mkdir()
            for path in extra:
                shutil.copyfile(path, target / path.name)
            self.client.log_model_artifacts(model.model_id, empty)
            mlflow.finalize_logged_model(model.model_id, "READY")
        return _LoggedModelRef(model_id=model.model_id, model_uri=f"models:/{model.model_id}")

    # -- reading -----------------------------------------------------------------------------
    def get_version(self, name: str, version: int | str | None = None, *, alias: str | None = None) -> ModelVersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            if alias is not None:
                found = self.client.get_model_version_by_alias(name, alias)
            else:
                found = self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            what = f"alias {alias!r}" if alias else f"version {version}"
            raise NotFound(f"model {name!r} has no {what}", code="version_not_found") from exc
        return self._to_info(found)

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        found = self.client.search_model_versions(f"name='{name}'")
        return sorted((self._to_info(version) for version in found), key=lambda info: info.version)

    def alias_version(self, name: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def set_alias(self, name: str, alias: str, version: int | None) -> None:
        """Point `alias` at `version`; None removes the alias."""
        from mlflow.exceptions import MlflowException

        if version is None:
            try:
                self.client.delete_registered_model_alias(name, alias)
            except MlflowException:
                logger.info("registry.alias_absent name=%s alias=%s", name, alias)
            return
        self.client.set_registered_model_alias(name, alias, str(version))
        logger.info("registry.alias_set name=%s alias=%s version=%s", name, alias, version)

    def fetch(self, info: ModelVersionInfo, roles: list[str] | None = None, *, verify: bool = True) -> dict[str, Path]:
        """Local, sha256-verified paths of the version's artifacts (all roles by default)."""
        wanted = [role for role in (roles or info.artifacts) if role in info.artifacts]
        cache = self.config.version_cache_dir(info.name, info.version)
        return {role: fetch_artifact(info.artifacts[role], cache, verify=verify) for role in wanted}

    def load(self, name: str, version: int | None = None, *, alias: str | None = PRODUCTION_ALIAS):
        """(info, predictor) for a version by number, or by alias (production by default).

        Every file is sha256-verified before the model is built; serving reads ONNX.
        """
        from mlops.inference.loader import load_predictor

        info = self.get_version(name, version) if version is not None else self.get_version(name, alias=alias)
        metadata = self.load_metadata(info)
        serving_roles = [ArtifactRole.ONNX, ArtifactRole.WEIGHTS, ArtifactRole.XGBOOST, ArtifactRole.FEATURE_SCHEMA]
        return info, load_predictor(str(info.kind), self.fetch(info, serving_roles), metadata)

    def load_metadata(self, info: ModelVersionInfo) -> dict:
        path = self.fetch(info, ["metadata"]).get("metadata")
        return json.loads(path.read_text()) if path else {}

    # -- retention ---------------------------------------------------------------------------
    def delete_version_artifacts(self, name: str, version: int) -> bool:
        """Delete a version's files from the artifact store; its record (and lineage) stays."""
        info = self.get_version(name, version)
        if info.aliases:
            raise InvalidInput(f"{name} v{version} carries aliases {info.aliases}; move them first", code="in_use")
        location = info.artifacts.get("metadata")
        if location is None:
            return False
        folder_uri = location.uri.rsplit("/extra_files/", 1)[0]
        local = local_path_of(folder_uri)
        if local is not None:
            shutil.rmtree(local, ignore_errors=True)
        else:
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            get_artifact_repository(folder_uri).delete_artifacts()
        self.client.set_model_version_tag(name, str(version), TAG_PURGED, datetime.now(UTC).isoformat())
        logger.info("registry.artifacts_deleted name=%s version=%s", name, version)
        return True

    # -- conversion --------------------------------------------------------------------------
    def _to_info(self, version, metadata: dict | None = None) -> ModelVersionInfo:
        tags = version.tags or {}
        if TAG_ARTIFACTS not in tags:
            raise StoreUnavailable(f"{version.name} v{version.version} was not registered by this product")
        artifacts = {role: Artifact.from_dict(data) for role, data in json.loads(tags[TAG_ARTIFACTS]).items()}
        return ModelVersionInfo(
            name=version.name,
            version=int(version.version),
            kind=ModelKind(tags.get(TAG_KIND, "detection")),
            source=version.source,
            run_id=version.run_id or "",
            artifacts=artifacts,
            metrics=json.loads(tags.get(TAG_METRICS, "{}")),
            lineage=Lineage.from_dict(json.loads(tags.get(TAG_LINEAGE, "{}"))),
            metadata=metadata if metadata is not None else {},
            aliases=tuple(getattr(version, "aliases", ()) or ()),
            description=version.description or "",
            created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC),
        )


def _existing_files(files: dict[str, Path | str]) -> dict[str, Path]:
    """The files by role as paths, each checked to exist before anything is logged."""
    paths = {str(role): Path(path) for role, path in files.items()}
    for role, path in paths.items():
        if not path.is_file():
            raise InvalidInput(f"artifact file for {role} does not exist: {path}", code="artifact_missing")
    return paths


def _stage_files(files: dict[str, Path], metadata: dict, staging: Path) -> tuple[dict[str, Path], Path]:
    """Copy the files under their role's name, beside metadata.json: the version's extra_files/."""
    staged: dict[str, Path] = {}
    for role, source in files.items():
        target = staging / "files" / _filename_for(role, source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        staged[role] = target
    metadata_path = staging / "files" / METADATA_FILE
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True))
    return staged, metadata_path


def _log_xgboost(model_path: Path, feature_schema: list[dict], extra: list[Path]):
    """The xgboost flavour, its signature naming the schema's features (double in, probabilities out)."""
    import mlflow.xgboost
    import numpy as np
    import xgboost as xgb
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    booster = xgb.Booster()
    booster.load_model(str(model_path))
    names = [feature["name"] for feature in feature_schema]
    booster.feature_names = names
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", feature) for feature in names]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
    )
    return mlflow.xgboost.log_model(
        booster,
        name="model",
        model_format="json",
        signature=signature,
        pip_requirements=_pinned("xgboost"),
        extra_files=[str(p) for p in extra],
    )


def _log_onnx(onnx_path: Path, extra: list[Path]):
    """The onnx flavour, its signature read from the graph's inputs and outputs."""
    import mlflow.onnx
    import numpy as np
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:
        raise InvalidInput(f"the ONNX file is not a valid ONNX model: {exc}", code="invalid_onnx") from exc
    inputs = [_tensor_spec(value, TensorSpec, np) for value in model.graph.input]
    outputs = [_tensor_spec(value, TensorSpec, np) for value in model.graph.output]
    return mlflow.onnx.log_model(
        model,
        name="model",
        signature=ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs)),
        save_as_external_data=False,
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=_pinned("onnx", "onnxruntime"),
        extra_files=[str(p) for p in extra],
    )


def _pinned(*packages: str) -> list[str]:
    """Exact requirements for the flavour's environment files.

    Given explicitly because MLflow's inference of them loads the model in a subprocess, which
    costs several seconds per registered version.
    """
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in packages]


class _LoggedModelRef:
    def __init__(self, model_id: str, model_uri: str):
        self.model_id = model_id
        self.model_uri = model_uri


def _tensor_spec(value, tensor_spec, np):
    import onnx

    tensor_type = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    shape = tuple(dim.dim_value if dim.dim_value > 0 else -1 for dim in tensor_type.shape.dim)
    return tensor_spec(np.dtype(dtype), shape, value.name)
