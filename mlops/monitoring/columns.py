"""The tables drift runs on, built the same way from logged predictions and from training references.

Evidently compares tables, not images, so a detector is watched through numbers per image: the
descriptors of mlops.inference.features (plus the aspect ratio) and a summary of what the model
found (box count, confidences, how much of the image the boxes cover, and the image's main class:
the class with the most boxes, "none" without any). A tabular model is watched through its raw
input features and its predicted probabilities. A classifier is watched through the same image
descriptors and aspect, its predicted class and the top-1 confidence.

The class mix is one categorical column whatever the number of classes, so a detector's table has
twelve columns for three classes as for eighty (a classifier's table nine), and the share of drifted
columns keeps its meaning.
Every other column is numerical, counts included. Declared categorical, a count gets Evidently's
chi-square on small samples, which returns p = 0 the moment a window holds a value the reference
never had (one image with more boxes than any validation image); left numerical, DriftDetector
gives low-cardinality columns K-S or Jensen-Shannon, which treat that as the small change it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from mlops.inference.features import BOX_DESCRIPTOR_NAMES, FEATURE_NAMES, box_descriptors
from mlops.training.yolo import CLASS_COUNT_PREFIX

ASPECT = "aspect"
MAIN_CLASS = "main_class"
NO_BOXES = "none"
# The classifier's output columns, named as mlops.training.yolo_classify writes its reference.
PREDICTED_CLASS = "predicted_class"
TOP1_CONFIDENCE = "top1_confidence"
NO_CLASS = "none"  # a logged classification without a class of the version's
DETECTION_CATEGORICAL: tuple[str, ...] = (MAIN_CLASS,)
CLASSIFICATION_CATEGORICAL: tuple[str, ...] = (PREDICTED_CLASS,)
TABULAR_CATEGORICAL: tuple[str, ...] = ()
CATEGORICAL_COLUMNS = (MAIN_CLASS, PREDICTED_CLASS)
# The share of drifted columns that flags a model, by kind, unless its settings say otherwise. A
# detector's twelve columns move in groups (a darker camera moves the four pixel statistics, bigger
# objects the box columns and the pixels they cover): a quarter of them is already a real change,
# and three of twelve K-S tests at p < 0.05 fail together by chance about 2 % of the time. Tabular
# models keep Evidently's own half. A classifier's nine columns move in the same groups: a quarter
# is three of them.
DEFAULT_DRIFT_SHARE = {"detection": 0.25, "tabular": 0.5, "classification": 0.25}
# Columns of the tabular reference that are not monitored inputs or outputs (xgb.save_model_files).
TABULAR_REFERENCE_EXTRAS = ("prediction", "target")


def detection_columns(class_names: Sequence[str]) -> list[str]:
    """The detection drift table's columns, in order."""
    return [*FEATURE_NAMES, ASPECT, *BOX_DESCRIPTOR_NAMES, MAIN_CLASS]


def probability_column(class_name: str) -> str:
    # Imported here: mlops.training.xgb imports xgboost, which importing this module should not cost.
    from mlops.training.xgb import PROBABILITY_PREFIX

    return f"{PROBABILITY_PREFIX}{class_name}"


def detection_rows_to_frame(rows: Iterable[Mapping], class_names: Sequence[str]) -> pd.DataFrame:
    """One row per logged detection: its image descriptors, aspect and what the model found.

    `rows` are `{"features": {...}, "boxes": [{"xyxyn", "class_id", "class_name", "confidence"}]}`;
    a missing descriptor becomes NaN; boxes of a class outside `class_names` count in n_boxes only.
    """
    names = list(class_names)
    table = pd.DataFrame([_detection_row(row, names) for row in rows], columns=detection_columns(names))
    return _typed(table)


def _detection_row(row: Mapping, class_names: list[str]) -> dict[str, float]:
    features = row.get("features") or {}
    boxes = row.get("boxes") or []
    values = {name: _number(features.get(name)) for name in FEATURE_NAMES}
    values[ASPECT] = _ratio(values["width"], values["height"])
    values.update(box_descriptors([box["confidence"] for box in boxes], [box["xyxyn"] for box in boxes]))
    counts = dict.fromkeys(class_names, 0)
    for box in boxes:
        name = _class_of(box, class_names)
        if name is not None:
            counts[name] += 1
    values[MAIN_CLASS] = main_class(counts)
    return values


def main_class(counts: Mapping[str, int]) -> str:
    """The class with the most boxes (the first in class order on a tie), NO_BOXES when there are none."""
    best = max(counts, key=lambda name: counts[name], default=None)
    return best if best is not None and counts[best] > 0 else NO_BOXES


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    numeric = [column for column in table.columns if column not in CATEGORICAL_COLUMNS]
    typed = table.astype({column: "float64" for column in numeric})
    for column in CATEGORICAL_COLUMNS:
        if column in typed.columns:
            typed[column] = typed[column].astype(str)
    return typed


def _class_of(box: Mapping, class_names: list[str]) -> str | None:
    """The box's class by id (how the reference counts), by name when the id is out of range."""
    class_id = box.get("class_id")
    if isinstance(class_id, int) and 0 <= class_id < len(class_names):
        return class_names[class_id]
    name = box.get("class_name")
    return name if name in class_names else None


def detection_reference_frame(reference: pd.DataFrame) -> pd.DataFrame:
    """A detector's training reference (mlops.training.yolo.save_reference) with the live table's columns.

    The aspect is derived; columns an older reference lacks (max_confidence, box_area_share) are
    left out, as the detector compares only the columns both tables have.
    """
    table = reference.copy()
    if "width" in table.columns and "height" in table.columns:
        table[ASPECT] = [_ratio(w, h) for w, h in zip(table["width"], table["height"], strict=True)]
    counts = [column for column in table.columns if str(column).startswith(CLASS_COUNT_PREFIX)]
    if counts:
        names = [str(column)[len(CLASS_COUNT_PREFIX) :] for column in counts]
        table[MAIN_CLASS] = [main_class(dict(zip(names, row, strict=True))) for row in table[counts].to_numpy()]
    wanted = [*FEATURE_NAMES, ASPECT, *BOX_DESCRIPTOR_NAMES, MAIN_CLASS]
    return _typed(table[[column for column in wanted if column in table.columns]])


def classification_columns(class_names: Sequence[str] = ()) -> list[str]:
    """The classification drift table's columns, in order: the same whatever the number of classes."""
    return [*FEATURE_NAMES, ASPECT, TOP1_CONFIDENCE, PREDICTED_CLASS]


def classification_rows_to_frame(rows: Iterable[Mapping], class_names: Sequence[str]) -> pd.DataFrame:
    """One row per logged classification: its image descriptors, aspect, top-1 confidence and class.

    `rows` are `{"features": {...}, "class_name": str, "confidence": float}`; a missing descriptor
    or confidence becomes NaN, a class that is not one of `class_names` becomes NO_CLASS.
    """
    names = set(class_names)
    records = []
    for row in rows:
        features = row.get("features") or {}
        values = {name: _number(features.get(name)) for name in FEATURE_NAMES}
        values[ASPECT] = _ratio(values["width"], values["height"])
        values[TOP1_CONFIDENCE] = _number(row.get("confidence"))
        class_name = row.get("class_name")
        values[PREDICTED_CLASS] = class_name if isinstance(class_name, str) and class_name in names else NO_CLASS
        records.append(values)
    return _typed(pd.DataFrame(records, columns=classification_columns(class_names)))


def classification_reference_frame(reference: pd.DataFrame) -> pd.DataFrame:
    """A classifier's training reference with the live table's columns, the aspect derived.

    The reference (mlops.training.yolo_classify) holds `image`, the descriptors, predicted_class
    and top1_confidence; columns it lacks are left out, as for detectors.
    """
    table = reference.copy()
    if "width" in table.columns and "height" in table.columns:
        table[ASPECT] = [_ratio(w, h) for w, h in zip(table["width"], table["height"], strict=True)]
    wanted = classification_columns()
    return _typed(table[[column for column in wanted if column in table.columns]])


def tabular_rows_to_frame(
    rows: Iterable[Mapping], feature_names: Sequence[str], class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per logged tabular prediction: its input features, then `proba_<class>` per class.

    `rows` are `{"inputs": {feature: value}, "probabilities": {class_name: p}}`; anything missing
    or not a number becomes NaN.
    """
    columns = [*feature_names, *(probability_column(name) for name in class_names)]
    records = []
    for row in rows:
        inputs = row.get("inputs") or {}
        probabilities = row.get("probabilities") or {}
        record = [_number(inputs.get(name)) for name in feature_names]
        record += [_number(probabilities.get(name)) for name in class_names]
        records.append(record)
    return pd.DataFrame(records, columns=columns, dtype="float64")


def tabular_reference_frame(reference: pd.DataFrame) -> pd.DataFrame:
    """A tabular model's training reference (mlops.training.xgb) without its prediction and target."""
    return reference.drop(columns=[c for c in TABULAR_REFERENCE_EXTRAS if c in reference.columns])


def _number(value) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _ratio(width, height) -> float:
    width, height = _number(width), _number(height)
    return width / height if height and not math.isnan(height) and not math.isnan(width) else math.nan
