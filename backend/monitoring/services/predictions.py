"""The prediction log of each kind of model as monitoring reads it: in bulk, newest first, sampled
above a cap, turned into the columns drift runs on."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from django.db.models import QuerySet

from backend.classification.models import Classification
from backend.detection.models import Detection
from backend.registry.models import ModelVersion, RegisteredModel
from backend.scoring.models import TabularPrediction
from mlops.monitoring import columns

ID_CHUNK = 1000  # ids per `pk__in` query when a sampled window is read back


@dataclass(frozen=True)
class LoggedWindow:
    """Predictions of one version read for a check: the table drift runs on and the span it covers."""

    frame: pd.DataFrame
    start: datetime | None
    end: datetime | None
    rows: int


class PredictionLog:
    """How one kind's predictions are read and turned into columns; one subclass per kind."""

    fields: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    def queryset(self, version: ModelVersion) -> QuerySet:
        raise NotImplementedError

    def to_frame(self, rows: list[dict], version: ModelVersion) -> pd.DataFrame:
        raise NotImplementedError

    def reference_frame(self, reference: pd.DataFrame, version: ModelVersion) -> pd.DataFrame:
        raise NotImplementedError

    def read(self, queryset: QuerySet, version: ModelVersion, *, cap: int, seed: int = 0) -> LoggedWindow:
        """The rows of `queryset` (ordered), all of them up to `cap`, else a seeded sample of `cap`."""
        ids = list(queryset.values_list("pk", flat=True))
        if len(ids) > cap:
            ids = random.Random(seed).sample(ids, cap)
        rows: list[dict] = []
        model = queryset.model
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            rows.extend(model.objects.filter(pk__in=chunk).values(*self.fields, "created_at"))
        times = [row["created_at"] for row in rows]
        return LoggedWindow(
            frame=self.to_frame(rows, version),
            start=min(times, default=None),
            end=max(times, default=None),
            rows=len(rows),
        )


class DetectionLog(PredictionLog):
    fields = ("features", "boxes")
    categorical = columns.DETECTION_CATEGORICAL

    def queryset(self, version: ModelVersion) -> QuerySet:
        return Detection.objects.filter(model_version=version)

    def to_frame(self, rows: list[dict], version: ModelVersion) -> pd.DataFrame:
        return columns.detection_rows_to_frame(rows, _class_names(version))

    def reference_frame(self, reference: pd.DataFrame, version: ModelVersion) -> pd.DataFrame:
        return columns.detection_reference_frame(reference)


class TabularLog(PredictionLog):
    fields = ("inputs", "probabilities")
    categorical = columns.TABULAR_CATEGORICAL

    def queryset(self, version: ModelVersion) -> QuerySet:
        return TabularPrediction.objects.filter(model_version=version)

    def to_frame(self, rows: list[dict], version: ModelVersion) -> pd.DataFrame:
        return columns.tabular_rows_to_frame(rows, _feature_names(version), _class_names(version))

    def reference_frame(self, reference: pd.DataFrame, version: ModelVersion) -> pd.DataFrame:
        return columns.tabular_reference_frame(reference)


class ClassificationLog(PredictionLog):
    """A classifier is watched through the image descriptors, its predicted class and top-1 confidence."""

    fields = ("features", "class_name", "confidence")
    categorical = columns.CLASSIFICATION_CATEGORICAL

    def queryset(self, version: ModelVersion) -> QuerySet:
        return Classification.objects.filter(model_version=version)

    def to_frame(self, rows: list[dict], version: ModelVersion) -> pd.DataFrame:
        return columns.classification_rows_to_frame(rows, _class_names(version))

    def reference_frame(self, reference: pd.DataFrame, version: ModelVersion) -> pd.DataFrame:
        return columns.classification_reference_frame(reference)


LOGS: dict[str, PredictionLog] = {
    RegisteredModel.Kind.DETECTION: DetectionLog(),
    RegisteredModel.Kind.TABULAR: TabularLog(),
    RegisteredModel.Kind.CLASSIFICATION: ClassificationLog(),
}


def log_of(version: ModelVersion) -> PredictionLog:
    return LOGS[version.model.kind]


def _class_names(version: ModelVersion) -> list[str]:
    return list((version.metadata or {}).get("class_names") or version.model.class_names or [])


def _feature_names(version: ModelVersion) -> list[str]:
    schema = (version.metadata or {}).get("feature_schema") or version.model.feature_schema or []
    return [feature["name"] for feature in schema]
