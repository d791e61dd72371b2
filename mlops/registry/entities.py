"""What the registry knows about a model version, independent of the store behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ModelKind(StrEnum):
    DETECTION = "detection"
    TABULAR = "tabular"
    CLASSIFICATION = "classification"


class ArtifactRole(StrEnum):
    """The files a version is made of. Serving reads ONNX; the others are sources and evidence."""

    WEIGHTS = "weights"  # YOLO .pt (pickle: loaded only after its sha256 matched)
    ONNX = "onnx"  # what serving processes run, for both kinds
    XGBOOST = "xgboost"  # XGBoost native JSON model
    FEATURE_SCHEMA = "feature_schema"  # JSON list of features, in model order
    REFERENCE = "reference"  # drift reference table (validation inputs + model outputs)
    DATA_MANIFEST = "data_manifest"
    VALIDATION_REPORT = "validation_report"


PRODUCTION_ALIAS = "production"
STAGING_ALIAS = "staging"


@dataclass(frozen=True)
class Artifact:
    role: str
    uri: str
    sha256: str
    size: int
    filename: str

    def to_dict(self) -> dict:
        return {"role": self.role, "uri": self.uri, "sha256": self.sha256, "size": self.size, "filename": self.filename}

    @classmethod
    def from_dict(cls, data: dict) -> Artifact:
        return cls(**{key: data[key] for key in ("role", "uri", "sha256", "size", "filename")})


@dataclass(frozen=True)
class Lineage:
    """Where a version came from: enough to rebuild it."""

    run_id: str = ""
    git_commit: str = ""
    data_version: str = ""
    config_hash: str = ""
    packages: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "git_commit": self.git_commit,
            "data_version": self.data_version,
            "config_hash": self.config_hash,
            "packages": dict(self.packages),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Lineage:
        return cls(
            run_id=data.get("run_id", ""),
            git_commit=data.get("git_commit", ""),
            data_version=data.get("data_version", ""),
            config_hash=data.get("config_hash", ""),
            packages=dict(data.get("packages", {})),
        )


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version as the store reports it."""

    name: str
    version: int
    kind: ModelKind
    source: str
    run_id: str
    artifacts: dict[str, Artifact]
    metrics: dict[str, float]
    lineage: Lineage
    # Detection versions carry class_names, imgsz and architecture; tabular versions carry
    # class_names and feature_schema (a list of features in model order).
    metadata: dict
    aliases: tuple[str, ...] = ()
    description: str = ""
    created_at: datetime | None = None

    def artifact(self, role: str) -> Artifact | None:
        return self.artifacts.get(role)
