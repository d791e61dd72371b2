"""Tabular scoring: records checked against the saved feature schema, assembled by name, scored.

XGBoost scores a NumPy row with swapped columns without complaint, so a record is never turned
into a row by its key order: columns are always built by feature name in schema order. A batch is
checked as one array (key sets, value types, finiteness, range, whole numbers) and only a batch that
fails goes record by record, to name the first bad record and field. The ONNX
scorer (converted by `convert.xgboost_json_to_onnx`) is what serving runs; the XGBoost scorer is
the fallback for a version without an ONNX file and imports xgboost only when constructed.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import chain, repeat
from pathlib import Path

import numpy as np

from mlops.exceptions import InvalidInput, MlopsError
from mlops.inference.convert import ONNX_PROBABILITIES
from mlops.inference.runtime import open_session

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_RECORDS = 10_000


@dataclass(frozen=True)
class Feature:
    """One input column of a tabular model, from the saved schema."""

    name: str
    dtype: str = "float"
    min: float | None = None
    max: float | None = None
    mean: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping) -> Feature:
        dtype = str(data.get("dtype", "float"))
        if dtype not in ("float", "int"):
            raise MlopsError(f"Feature {data.get('name')!r} has unknown dtype {dtype!r}.", code="model_invalid")
        return cls(
            name=str(data["name"]),
            dtype=dtype,
            min=_optional_float(data.get("min")),
            max=_optional_float(data.get("max")),
            mean=_optional_float(data.get("mean")),
        )

    def typical_value(self) -> float:
        """The schema's mean, or the middle of its range: a value the model has certainly seen."""
        if self.mean is not None:
            value = self.mean
        elif self.min is not None and self.max is not None:
            value = (self.min + self.max) / 2
        else:
            value = self.min if self.min is not None else 0.0
        return float(round(value)) if self.dtype == "int" else float(value)


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def parse_schema(feature_schema: Sequence[Mapping] | str | Path) -> tuple[Feature, ...]:
    """Accept the schema as a list of dicts, a JSON string, or the path of the JSON artifact."""
    if isinstance(feature_schema, Path):
        feature_schema = json.loads(feature_schema.read_text())
    elif isinstance(feature_schema, str):
        feature_schema = json.loads(feature_schema)
    features = tuple(Feature.from_dict(item) for item in feature_schema)
    if not features:
        raise MlopsError("The feature schema is empty.", code="model_invalid")
    names = [feature.name for feature in features]
    if len(set(names)) != len(names):
        raise MlopsError("The feature schema names a feature twice.", code="model_invalid")
    return features


@dataclass(frozen=True)
class TabularPrediction:
    label: str
    class_id: int
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        return {"label": self.label, "class_id": self.class_id, "probabilities": dict(self.probabilities)}


@dataclass(frozen=True)
class TabularScores:
    """A batch scored: each row's probabilities (columns in class order) and predicted class, as arrays."""

    class_names: tuple[str, ...]
    probabilities: np.ndarray  # (records, classes), float64
    class_ids: np.ndarray  # (records,), the first class of highest probability

    def labels(self) -> list[str]:
        return [self.class_names[class_id] for class_id in self.class_ids.tolist()]

    def as_dicts(self) -> list[dict]:
        """One {"label", "class_id", "probabilities"} per record, in record order."""
        names = self.class_names
        return [
            {"label": names[class_id], "class_id": class_id, "probabilities": dict(zip(names, row, strict=True))}
            for class_id, row in zip(self.class_ids.tolist(), self.probabilities.tolist(), strict=True)
        ]

    def predictions(self) -> list[TabularPrediction]:
        return [TabularPrediction(**item) for item in self.as_dicts()]


def _invalid(index: int, name: str | None, problem: str, message: str) -> InvalidInput:
    where = f"record {index}" if name is None else f"record {index}, field {name!r}"
    return InvalidInput(
        f"{where}: {message}", code="invalid_record", details={"record": index, "field": name, "problem": problem}
    )


class _SchemaScorer:
    """Validation and labelling shared by the ONNX and XGBoost scorers."""

    kind = "tabular"

    def __init__(self, feature_schema, class_names: Sequence[str]):
        self.features = parse_schema(feature_schema)
        self.feature_names = tuple(feature.name for feature in self.features)
        self.class_names = [str(name) for name in class_names]
        if len(self.class_names) < 2:
            raise MlopsError("A tabular classifier needs at least two class names.", code="model_invalid")
        self._known = frozenset(self.feature_names)
        self._in_schema_order = operator.itemgetter(*self.feature_names)
        self._int_columns = [i for i, feature in enumerate(self.features) if feature.dtype == "int"]

    def validate(self, records: Sequence[Mapping]) -> np.ndarray:
        """Check every record against the schema and build a float32 matrix, columns in schema order.

        The whole batch is checked at once; a batch that fails is checked again record by record, which
        raises InvalidInput naming the first bad record and field.
        """
        if isinstance(records, Mapping) or not isinstance(records, Sequence) or isinstance(records, str | bytes):
            raise InvalidInput("records must be a list of objects.", code="invalid_record", details={"problem": "type"})
        if not records:
            raise InvalidInput("records is empty.", code="invalid_record", details={"problem": "empty"})
        if len(records) > MAX_RECORDS:
            raise InvalidInput(
                f"At most {MAX_RECORDS} records per request.", code="invalid_record", details={"problem": "too_many"}
            )
        matrix = self._checked_batch(records)
        return matrix if matrix is not None else self._checked_one_by_one(records)

    def _checked_batch(self, records: Sequence) -> np.ndarray | None:
        """The matrix of a batch of plain JSON records that all pass, checked as arrays; None otherwise.

        None never means a bad record: it sends the batch to `_checked_one_by_one`, which decides (it also
        accepts what this refuses to judge, e.g. a Mapping that is not a dict, or a numbers.Real that is
        neither int nor float).
        """
        if not all(type(record) is dict for record in records):
            return None
        if not all(map(operator.eq, map(dict.keys, records), repeat(self._known))):
            return None  # an unknown or a missing field
        rows = list(map(self._in_schema_order, records))
        if len(self.features) == 1:
            rows = [(value,) for value in rows]
        if not {type(value) for value in chain.from_iterable(rows)} <= {float, int}:
            return None  # bool, str, None, nested values: each gets its own message
        try:
            values = np.array(rows, dtype=np.float64)
        except (OverflowError, ValueError, TypeError):  # an integer no float holds
            return None
        magnitude = np.abs(values)
        if not (magnitude <= FLOAT32_MAX).all():  # also false for NaN; JSON has no infinity, Python has
            return None
        if self._int_columns:
            whole = values[:, self._int_columns]
            if not (whole == np.floor(whole)).all():
                return None
        return values.astype(np.float32)

    def _checked_one_by_one(self, records: Sequence) -> np.ndarray:
        matrix = np.empty((len(records), len(self.features)), dtype=np.float32)
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise _invalid(index, None, "not_an_object", "a record must be an object of feature values")
            unknown = [key for key in record if key not in self._known]
            if unknown:
                raise _invalid(index, str(unknown[0]), "unknown_field", "is not a feature of this model")
            for column, feature in enumerate(self.features):
                if feature.name not in record:
                    raise _invalid(index, feature.name, "missing_field", "is missing")
                matrix[index, column] = _checked_value(index, feature, record[feature.name])
        return matrix

    def _scored(self, probabilities: np.ndarray) -> TabularScores:
        if probabilities.ndim != 2 or probabilities.shape[1] != len(self.class_names):
            raise MlopsError(
                f"The model returned probabilities of shape {probabilities.shape} for {len(self.class_names)} classes.",
                code="model_invalid",
            )
        return TabularScores(tuple(self.class_names), probabilities, probabilities.argmax(axis=1))

    def score(self, records: Sequence[Mapping]) -> TabularScores:
        """Validate and score a batch of records; InvalidInput names the first bad record and field."""
        return self._scored(self.predict_proba(self.validate(records)))

    def predict(self, records: Sequence[Mapping]) -> list[TabularPrediction]:
        """Validate, score and label records; InvalidInput names the first bad record and field."""
        return self.score(records).predictions()

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "class_names": list(self.class_names),
            "feature_schema": [asdict(feature) for feature in self.features],
        }


def _checked_value(index: int, feature: Feature, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid(index, feature.name, "not_a_number", f"must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits: no float holds it
        raise _invalid(index, feature.name, "out_of_range", "is too large") from None
    if not math.isfinite(number):
        raise _invalid(index, feature.name, "not_finite", "must be a finite number (no NaN or infinity)")
    if abs(number) > FLOAT32_MAX:
        raise _invalid(index, feature.name, "out_of_range", "is too large")
    if feature.dtype == "int" and not number.is_integer():
        raise _invalid(index, feature.name, "not_an_integer", "must be a whole number")
    return number


class TabularScorer(_SchemaScorer):
    """An XGBoost classifier converted to ONNX, run on ONNX Runtime (no xgboost import)."""

    def __init__(
        self,
        onnx_path: Path | str,
        feature_schema,
        class_names: Sequence[str],
        intra_op_threads: int | None = 1,
    ):
        super().__init__(feature_schema, class_names)
        self.path = Path(onnx_path)
        self.session = open_session(self.path, intra_op_threads=intra_op_threads)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        width = model_input.shape[1] if len(model_input.shape) == 2 else None
        if isinstance(width, int) and width != len(self.features):
            raise MlopsError(
                f"The model takes {width} features but the schema lists {len(self.features)}.",
                code="model_invalid",
                details={"model_features": width, "schema_features": len(self.features)},
            )
        outputs = [output.name for output in self.session.get_outputs()]
        self.output_name = ONNX_PROBABILITIES if ONNX_PROBABILITIES in outputs else outputs[-1]

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self.output_name], {self.input_name: matrix})[0], dtype=np.float64)


class XGBoostScorer(_SchemaScorer):
    """Fallback for a version without an ONNX file: the XGBoost JSON model, xgboost imported here."""

    def __init__(
        self, json_path: Path | str, feature_schema, class_names: Sequence[str], intra_op_threads: int | None = 1
    ):
        super().__init__(feature_schema, class_names)
        import xgboost

        self._xgboost = xgboost
        self.path = Path(json_path)
        self.booster = xgboost.Booster()
        try:
            self.booster.load_model(str(self.path))
        except xgboost.core.XGBoostError as exc:
            raise MlopsError(f"XGBoost cannot load {self.path.name}: {exc}", code="model_load_failed") from exc
        if intra_op_threads:
            self.booster.set_param({"nthread": int(intra_op_threads)})
        self.objective = json.loads(self.booster.save_config())["learner"]["objective"]["name"]
        if not self.objective.startswith(("binary:logistic", "binary:logitraw", "multi:")):
            raise MlopsError(f"Unsupported XGBoost objective {self.objective!r}.", code="model_invalid")
        if self.booster.num_features() != len(self.features):
            raise MlopsError(
                f"The model takes {self.booster.num_features()} features but the schema lists {len(self.features)}.",
                code="model_invalid",
            )
        stored = self.booster.feature_names
        if stored is not None and list(stored) != list(self.feature_names):
            raise MlopsError("The model's feature names differ from the schema's.", code="model_invalid")
        self._lock = threading.Lock()

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        names = list(self.feature_names) if self.booster.feature_names is not None else None
        dmatrix = self._xgboost.DMatrix(matrix, feature_names=names)
        with self._lock:  # Booster.predict is not documented as thread-safe
            margin = np.asarray(self.booster.predict(dmatrix, output_margin=True), dtype=np.float64)
        if margin.ndim == 1:  # binary: the margin of the positive class
            positive = 1.0 / (1.0 + np.exp(-margin))
            return np.stack([1.0 - positive, positive], axis=1)
        shifted = np.exp(margin - margin.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
