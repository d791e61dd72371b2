"""The drift tables built from logged predictions match the ones built from training references."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mlops.inference.features import FEATURE_NAMES
from mlops.monitoring.columns import (
    CLASSIFICATION_CATEGORICAL,
    DEFAULT_DRIFT_SHARE,
    DETECTION_CATEGORICAL,
    TABULAR_CATEGORICAL,
    classification_columns,
    classification_reference_frame,
    classification_rows_to_frame,
    detection_columns,
    detection_reference_frame,
    detection_rows_to_frame,
    tabular_reference_frame,
    tabular_rows_to_frame,
)

CLASSES = ["cat", "dog"]
OUTPUTS = ["n_boxes", "mean_confidence", "max_confidence", "box_area_share"]
FEATURES = {"width": 640, "height": 480, "brightness": 100, "contrast": 40, "sharpness": 200, "colourfulness": 30}


def box(xyxyn, class_id, confidence, class_name=None):
    name = class_name if class_name is not None else CLASSES[class_id]
    return {"xyxyn": xyxyn, "class_id": class_id, "class_name": name, "confidence": confidence}


def test_a_logged_detection_becomes_one_row_of_descriptors():
    rows = [
        {
            "features": FEATURES,
            "boxes": [
                box([0.0, 0.0, 0.5, 0.5], 0, 0.9),
                box([0.5, 0.5, 1.2, 1.0], 1, 0.5),  # runs off the image: clipped to 0.5 x 0.5
                box([0.1, 0.1, 0.2, 0.2], 7, 0.7, class_name="dog"),  # unknown id: counted by name
                box([0.1, 0.1, 0.2, 0.2], 9, 0.6, class_name="bird"),  # neither: in n_boxes only
            ],
        },
        {"features": {**FEATURES, "height": 0}, "boxes": []},
    ]
    table = detection_rows_to_frame(rows, CLASSES)
    assert list(table.columns) == [*FEATURE_NAMES, "aspect", *OUTPUTS, "main_class"]
    first, second = table.iloc[0], table.iloc[1]
    assert first["aspect"] == pytest.approx(640 / 480)
    assert first["n_boxes"] == 4
    assert first["mean_confidence"] == pytest.approx(0.675) and first["max_confidence"] == pytest.approx(0.9)
    assert first["box_area_share"] == pytest.approx(0.25 + 0.25 + 0.01 + 0.01)
    assert first["main_class"] == "dog"  # one cat, two dogs (one of them known by name only)
    assert math.isnan(second["aspect"])
    assert (second["n_boxes"], second["mean_confidence"], second["max_confidence"], second["box_area_share"]) == (
        0, 0, 0, 0
    )  # fmt: skip
    assert second["main_class"] == "none"
    assert all(dtype == "float64" for column, dtype in table.dtypes.items() if column != "main_class")


def test_box_area_share_is_capped_at_the_whole_image():
    whole = [box([0, 0, 1, 1], 0, 0.9), box([0, 0, 1, 1], 1, 0.8)]
    table = detection_rows_to_frame([{"features": FEATURES, "boxes": whole}], CLASSES)
    assert table.loc[0, "box_area_share"] == 1.0


def test_missing_and_unreadable_descriptors_are_missing_values():
    table = detection_rows_to_frame([{"features": {"width": "wide", "brightness": None}, "boxes": None}], CLASSES)
    assert table[list(FEATURE_NAMES)].isna().all(axis=None)
    assert table.loc[0, "n_boxes"] == 0
    assert detection_rows_to_frame([], CLASSES).columns.tolist() == detection_columns(CLASSES)


def test_the_detection_reference_gets_the_same_columns():
    saved = pd.DataFrame(
        [{"image": "a.jpg", **FEATURES, "n_boxes": 1, "mean_confidence": 0.8, "max_confidence": 0.8,
          "box_area_share": 0.1, "count_cat": 1, "count_dog": 0}]
    )  # fmt: skip
    frame = detection_reference_frame(saved)
    assert list(frame.columns) == detection_columns(CLASSES)
    assert frame.loc[0, "main_class"] == "cat"
    assert frame.loc[0, "aspect"] == pytest.approx(640 / 480)
    newer = ["max_confidence", "box_area_share"]
    older = detection_reference_frame(saved.drop(columns=newer))
    assert list(older.columns) == [column for column in detection_columns(CLASSES) if column not in newer]


def test_a_logged_tabular_prediction_becomes_its_inputs_and_probabilities():
    rows = [
        {"inputs": {"age": 40, "income": "52000.5"}, "probabilities": {"no": 0.3, "yes": 0.7}},
        {"inputs": {"age": "n/a"}, "probabilities": {"no": 1.0}},
    ]
    table = tabular_rows_to_frame(rows, ["age", "income"], ["no", "yes"])
    assert list(table.columns) == ["age", "income", "proba_no", "proba_yes"]
    assert table.iloc[0].tolist() == [40.0, 52000.5, 0.3, 0.7]
    assert table.iloc[1].isna().tolist() == [True, True, False, True]


def test_the_tabular_reference_drops_prediction_and_target():
    saved = pd.DataFrame({"age": [40], "income": [1.0], "proba_no": [0.3], "proba_yes": [0.7], "prediction": [1],
                          "target": [1]})  # fmt: skip
    assert list(tabular_reference_frame(saved).columns) == ["age", "income", "proba_no", "proba_yes"]


def test_the_class_mix_is_the_one_categorical_column_whatever_the_number_of_classes():
    assert DETECTION_CATEGORICAL == ("main_class",) and TABULAR_CATEGORICAL == ()
    assert len(detection_columns(CLASSES)) == len(detection_columns([f"class{n}" for n in range(80)])) == 12
    tie = detection_rows_to_frame(
        [{"features": FEATURES, "boxes": [box([0, 0, 1, 1], 1, 0.5), box([0, 0, 1, 1], 0, 0.5)]}], CLASSES
    )
    assert tie.loc[0, "main_class"] == "cat"  # a tie goes to the first class


def test_a_logged_classification_becomes_one_row_of_descriptors():
    rows = [
        {"features": FEATURES, "class_name": "dog", "confidence": 0.8},
        {"features": {"width": "wide", "height": 0}, "class_name": "bird", "confidence": None},  # not a class
        {"features": None},
    ]
    table = classification_rows_to_frame(rows, CLASSES)
    assert list(table.columns) == [*FEATURE_NAMES, "aspect", "top1_confidence", "predicted_class"]
    assert table.shape == (3, 9)
    first, second, third = (table.iloc[i] for i in range(3))
    assert first[list(FEATURE_NAMES)].tolist() == [float(FEATURES[name]) for name in FEATURE_NAMES]
    assert first["aspect"] == pytest.approx(640 / 480)
    assert (first["top1_confidence"], first["predicted_class"]) == (0.8, "dog")
    assert math.isnan(second["width"]) and math.isnan(second["aspect"]) and math.isnan(second["top1_confidence"])
    assert second["predicted_class"] == third["predicted_class"] == "none"
    assert table[list(FEATURE_NAMES)].iloc[2].isna().all()
    assert all(dtype == "float64" for column, dtype in table.dtypes.items() if column != "predicted_class")
    assert classification_rows_to_frame([], CLASSES).columns.tolist() == classification_columns(CLASSES)


def test_the_classification_table_does_not_grow_with_the_classes():
    assert CLASSIFICATION_CATEGORICAL == ("predicted_class",)
    many = [f"class{n}" for n in range(1000)]
    assert len(classification_columns(CLASSES)) == len(classification_columns(many)) == 9
    row = {"features": FEATURES, "class_name": "class999", "confidence": 0.5}
    assert classification_rows_to_frame([row], many).shape == (1, 9)
    assert DEFAULT_DRIFT_SHARE["classification"] == 0.25


def test_the_classification_reference_gets_the_same_columns():
    saved = pd.DataFrame(
        [{"image": "cat/a.jpg", **FEATURES, "predicted_class": "cat", "top1_confidence": 0.9}]
    )  # the table mlops.training.yolo_classify saves
    frame = classification_reference_frame(saved)
    assert list(frame.columns) == classification_columns(CLASSES)
    assert frame.loc[0, "aspect"] == pytest.approx(640 / 480) and frame.loc[0, "predicted_class"] == "cat"
    live = classification_rows_to_frame([{"features": FEATURES, "class_name": "cat", "confidence": 0.9}], CLASSES)
    pd.testing.assert_frame_equal(frame, live)
