"""The tables drift runs on, built the same way from logged predictions and from training references.

Evidently compares tables, not images, so a detector is watched through numbers per image: the
descriptors of mlops.inference.features (plus the aspect ratio) and a summary of what the model
found (box count, confidences, how much of the image the boxes cover, boxes per class). A tabular
model is watched through its raw input features and its predicted probabilities.

Every column is numerical, counts included. Declared categorical, a count gets Evidently's
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
DETECTION_CATEGORICAL: tuple[str, ...] = ()
TABULAR_CATEGORICAL: tuple[str, ...] = ()
# Columns of the tabular reference that are not monitored inputs or outputs (xgb.save_model_files).
TABULAR_REFERENCE_EXTRAS = ("prediction", "target")


def detection_columns(class_names: Sequence[str]) -> list[str]:
    """The detection drift table's columns, in order."""
    return [*FEATURE_NAMES, ASPECT, *BOX_DESCRIPTOR_NAMES, *(class_count_column(name) for name in class_names)]


def class_count_column(class_name: str) -> str:
    return f"{CLASS_COUNT_PREFIX}{class_name}"


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
    return table.astype("float64")


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
    values.update({class_count_column(name): count for name, count in counts.items()})
    return values


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
    wanted = [*FEATURE_NAMES, ASPECT, *BOX_DESCRIPTOR_NAMES]
    counts = [column for column in table.columns if str(column).startswith(CLASS_COUNT_PREFIX)]
    return table[[column for column in wanted if column in table.columns] + counts].astype("float64")


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
