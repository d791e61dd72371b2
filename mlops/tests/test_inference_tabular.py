"""Tabular scoring on a real XGBoost model trained on scikit-learn's breast-cancer table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mlops.exceptions import InvalidInput, MlopsError
from mlops.inference.convert import xgboost_json_to_onnx
from mlops.inference.tabular import TabularPrediction, TabularScorer, XGBoostScorer

CLASS_NAMES = ["malignant", "benign"]


@dataclass(frozen=True)
class TabularFiles:
    json: Path
    onnx: Path
    schema: list[dict]
    features: np.ndarray  # held-out rows, columns in schema order
    names: list[str]


def train_breast_cancer(directory: Path) -> TabularFiles:
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    table = load_breast_cancer(as_frame=True)
    train, test, y_train, _ = train_test_split(table.data, table.target, test_size=0.25, random_state=0)
    model = xgb.XGBClassifier(n_estimators=30, max_depth=3, learning_rate=0.3, random_state=0, n_jobs=1)
    model.fit(train, y_train)
    json_path = directory / "model.json"
    model.save_model(json_path)
    schema = [
        {
            "name": name,
            "dtype": "float",
            "min": float(train[name].min()),
            "max": float(train[name].max()),
            "mean": float(train[name].mean()),
        }
        for name in train.columns
    ]
    (directory / "feature_schema.json").write_text(json.dumps(schema))
    onnx_path = xgboost_json_to_onnx(json_path, len(schema), directory / "model.onnx")
    return TabularFiles(json_path, onnx_path, schema, test.to_numpy(np.float32), list(train.columns))


@pytest.fixture(scope="module")
def tabular(tmp_path_factory) -> TabularFiles:
    return train_breast_cancer(tmp_path_factory.mktemp("tabular"))


@pytest.fixture(scope="module")
def scorer(tabular) -> TabularScorer:
    return TabularScorer(tabular.onnx, tabular.schema, CLASS_NAMES)


def records_of(tabular: TabularFiles, rows: np.ndarray) -> list[dict]:
    return [{name: float(value) for name, value in zip(tabular.names, row, strict=True)} for row in rows]


def test_onnx_probabilities_equal_xgboost_predict(tabular, scorer):
    import xgboost as xgb

    model = xgb.XGBClassifier()
    model.load_model(tabular.json)
    expected = model.predict_proba(tabular.features)
    predictions = scorer.predict(records_of(tabular, tabular.features))
    got = np.array([[p.probabilities[name] for name in CLASS_NAMES] for p in predictions])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [p.class_id for p in predictions] == model.predict(tabular.features).tolist()
    assert all(p.label == CLASS_NAMES[p.class_id] for p in predictions)
    assert len({round(p.probabilities["benign"], 3) for p in predictions}) > 10, "a constant model proves nothing"


def test_xgboost_fallback_scores_like_onnx(tabular, scorer):
    fallback = XGBoostScorer(tabular.json, tabular.schema, CLASS_NAMES)
    records = records_of(tabular, tabular.features[:40])
    for ours, theirs in zip(fallback.predict(records), scorer.predict(records), strict=True):
        assert ours.label == theirs.label
        assert ours.probabilities == pytest.approx(theirs.probabilities, abs=1e-5)


def test_key_order_does_not_matter_but_column_order_would(tabular, scorer):
    record = records_of(tabular, tabular.features[:1])[0]
    shuffled = dict(reversed(list(record.items())))
    assert list(shuffled) != list(record)
    assert scorer.predict([shuffled]) == scorer.predict([record])
    np.testing.assert_array_equal(scorer.validate([shuffled]), scorer.validate([record]))

    # What a raw array with two columns swapped does: XGBoost scores it without complaint, differently.
    import xgboost as xgb

    model = xgb.XGBClassifier()
    model.load_model(tabular.json)
    rows = scorer.validate(records_of(tabular, tabular.features))
    swapped = rows.copy()
    first, second = tabular.names.index("worst radius"), tabular.names.index("worst texture")
    swapped[:, [first, second]] = swapped[:, [second, first]]
    moved = np.abs(model.predict_proba(swapped) - model.predict_proba(rows))[:, 1] > 1e-3
    flipped = model.predict(swapped) != model.predict(rows)
    assert moved.mean() > 0.5 and flipped.sum() >= 3, "swapped columns are scored silently and differently"


def test_validate_builds_float32_in_schema_order(tabular, scorer):
    record = records_of(tabular, tabular.features[:1])[0]
    matrix = scorer.validate([record, {**record, "mean radius": 3}])
    assert matrix.dtype == np.float32 and matrix.shape == (2, len(tabular.schema))
    np.testing.assert_array_equal(matrix[0], tabular.features[0])
    assert matrix[1, tabular.names.index("mean radius")] == 3.0


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (lambda r: r.update({"colour": 1.0}), "colour", "unknown_field"),
        (lambda r: r.pop("mean area"), "mean area", "missing_field"),
        (lambda r: r.update({"mean area": "large"}), "mean area", "not_a_number"),
        (lambda r: r.update({"mean area": None}), "mean area", "not_a_number"),
        (lambda r: r.update({"mean area": True}), "mean area", "not_a_number"),
        (lambda r: r.update({"mean area": float("nan")}), "mean area", "not_finite"),
        (lambda r: r.update({"worst area": float("inf")}), "worst area", "not_finite"),
        (lambda r: r.update({"worst area": 1e300}), "worst area", "out_of_range"),
        (lambda r: r.update({"worst area": 10**400}), "worst area", "out_of_range"),
    ],
    ids=["unknown", "missing", "string", "null", "bool", "nan", "inf", "overflow", "huge-int"],
)
def test_bad_records_name_the_record_and_field(tabular, scorer, change, field, problem):
    good = records_of(tabular, tabular.features[:3])
    bad = dict(good[2])
    change(bad)
    with pytest.raises(InvalidInput) as raised:
        scorer.predict([*good[:2], bad])
    error = raised.value
    assert error.details == {"record": 2, "field": field, "problem": problem}
    assert "record 2" in error.message and repr(field) in error.message
    assert error.status == 400


@pytest.mark.parametrize("records", [[], {"mean radius": 1.0}, "text", [1, 2]], ids=["empty", "dict", "str", "ints"])
def test_records_must_be_a_list_of_objects(scorer, records):
    with pytest.raises(InvalidInput):
        scorer.validate(records)


def test_integer_features_must_be_whole(tabular):
    schema = [dict(item) for item in tabular.schema]
    schema[0]["dtype"] = "int"
    strict = TabularScorer(tabular.onnx, schema, CLASS_NAMES)
    record = records_of(tabular, tabular.features[:1])[0]
    strict.validate([{**record, "mean radius": 14}])
    with pytest.raises(InvalidInput) as raised:
        strict.validate([{**record, "mean radius": 14.5}])
    assert raised.value.details["problem"] == "not_an_integer"


def test_prediction_shape(scorer, tabular):
    (prediction,) = scorer.predict(records_of(tabular, tabular.features[:1]))
    assert isinstance(prediction, TabularPrediction)
    assert list(prediction.probabilities) == CLASS_NAMES
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert prediction.to_dict()["label"] == prediction.label


def test_schema_and_model_must_agree(tabular, tmp_path):
    with pytest.raises(MlopsError) as raised:
        TabularScorer(tabular.onnx, tabular.schema[:-1], CLASS_NAMES)
    assert raised.value.code == "model_invalid"
    with pytest.raises(MlopsError):
        XGBoostScorer(tabular.json, list(reversed(tabular.schema)), CLASS_NAMES)
    with pytest.raises(MlopsError):
        TabularScorer(tabular.onnx, tabular.schema, ["only one"])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(MlopsError) as raised:
        TabularScorer(garbage, tabular.schema, CLASS_NAMES)
    assert raised.value.code == "model_load_failed"


def test_multiclass_model(tmp_path):
    import xgboost as xgb
    from sklearn.datasets import load_iris

    table = load_iris(as_frame=True)
    model = xgb.XGBClassifier(n_estimators=10, max_depth=2, random_state=0, n_jobs=1).fit(table.data, table.target)
    model.save_model(tmp_path / "iris.json")
    schema = [{"name": name, "dtype": "float"} for name in table.data.columns]
    onnx_path = xgboost_json_to_onnx(tmp_path / "iris.json", len(schema), tmp_path / "iris.onnx")
    names = list(table.target_names)
    records = table.data.head(20).to_dict("records")
    onnx_scores = TabularScorer(onnx_path, schema, names).predict(records)
    xgb_scores = XGBoostScorer(tmp_path / "iris.json", schema, names).predict(records)
    expected = model.predict_proba(table.data.head(20))
    for row, ours, fallback in zip(expected, onnx_scores, xgb_scores, strict=True):
        assert [ours.probabilities[n] for n in names] == pytest.approx(row.tolist(), abs=1e-5)
        assert [fallback.probabilities[n] for n in names] == pytest.approx(row.tolist(), abs=1e-5)
