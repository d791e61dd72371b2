"""A batch of records checked as one array: the same matrix, scores and errors as record by record."""

from __future__ import annotations

import types

import numpy as np
import pytest

from mlops.exceptions import InvalidInput
from mlops.inference.tabular import TabularScorer
from mlops.tests.test_inference_tabular import CLASS_NAMES, records_of, train_breast_cancer

BATCH = 1000


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    return train_breast_cancer(tmp_path_factory.mktemp("tabular-batch"))


@pytest.fixture(scope="module")
def scorer(tabular) -> TabularScorer:
    return TabularScorer(tabular.onnx, tabular.schema, CLASS_NAMES)


@pytest.fixture(scope="module")
def rows(tabular) -> np.ndarray:
    """1,000 rows of the held-out table (cycled), each slightly moved so that no two are alike."""
    base = tabular.features[np.arange(BATCH) % len(tabular.features)].astype(np.float64)
    return base * np.random.default_rng(0).uniform(0.9, 1.1, size=base.shape)


def batch_of(tabular, rows) -> list[dict]:
    records = records_of(tabular, rows)
    for index in range(0, BATCH, 7):  # key order differs from record to record
        records[index] = dict(reversed(list(records[index].items())))
    return records


def test_a_batch_scores_like_xgboost_itself_on_the_same_rows(tabular, scorer, rows):
    import xgboost as xgb

    model = xgb.XGBClassifier()
    model.load_model(tabular.json)
    matrix = rows.astype(np.float32)

    scores = scorer.score(batch_of(tabular, rows))

    np.testing.assert_allclose(scores.probabilities, model.predict_proba(matrix), atol=1e-5)
    assert scores.class_ids.tolist() == model.predict(matrix).tolist()
    assert scores.labels() == [CLASS_NAMES[i] for i in model.predict(matrix).tolist()]
    first = scores.as_dicts()[0]
    assert list(first) == ["label", "class_id", "probabilities"] and list(first["probabilities"]) == CLASS_NAMES
    assert len({round(p, 3) for p in scores.probabilities[:, 1].tolist()}) > 50, "a constant model proves nothing"


def test_the_batch_check_builds_the_matrix_by_name_in_schema_order(tabular, scorer, rows):
    records = batch_of(tabular, rows)
    records[3] = {**records[3], "mean radius": 14}  # an int among floats
    expected = np.array([[record[name] for name in tabular.names] for record in records], dtype=np.float32)

    batch = scorer._checked_batch(records)

    assert batch is not None, "plain JSON records take the array check"
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, expected)
    np.testing.assert_array_equal(scorer.validate(records), expected)
    assert batch[3, tabular.names.index("mean radius")] == 14.0


def test_what_the_array_check_does_not_judge_is_still_accepted(tabular, scorer, rows):
    """A read-only mapping, NumPy scalars: not JSON, but numbers by name, as before."""
    records = records_of(tabular, rows[:5])
    expected = scorer.validate(records)
    unusual = [types.MappingProxyType(records[0]), *({k: np.float32(v) for k, v in r.items()} for r in records[1:])]
    np.testing.assert_array_equal(scorer.validate(unusual), expected)


BAD_VALUES = [
    (lambda r, f: r.pop(f), "missing_field"),
    (lambda r, f: r.update({f: "12.5"}), "not_a_number"),
    (lambda r, f: r.update({f: None}), "not_a_number"),
    (lambda r, f: r.update({f: True}), "not_a_number"),
    (lambda r, f: r.update({f: [1.0]}), "not_a_number"),
    (lambda r, f: r.update({f: float("nan")}), "not_finite"),
    (lambda r, f: r.update({f: float("-inf")}), "not_finite"),
    (lambda r, f: r.update({f: 1e39}), "out_of_range"),
    (lambda r, f: r.update({f: -(10**400)}), "out_of_range"),
]


@pytest.mark.parametrize(("change", "problem"), BAD_VALUES, ids=[p for _, p in BAD_VALUES])
@pytest.mark.parametrize("index", [0, 637, BATCH - 1])
def test_a_bad_value_anywhere_in_a_batch_is_named_by_record_and_field(tabular, scorer, rows, change, problem, index):
    records = batch_of(tabular, rows)
    field = tabular.names[index % len(tabular.names)]
    records[index] = dict(records[index])
    change(records[index], field)

    with pytest.raises(InvalidInput) as raised:
        scorer.score(records)

    assert raised.value.details == {"record": index, "field": field, "problem": problem}
    assert f"record {index}" in raised.value.message and repr(field) in raised.value.message
    assert raised.value.status == 400


def test_an_unknown_field_and_a_record_that_is_not_an_object(tabular, scorer, rows):
    records = batch_of(tabular, rows)
    records[412] = {**records[412], "colour": 1.0}
    with pytest.raises(InvalidInput) as raised:
        scorer.score(records)
    assert raised.value.details == {"record": 412, "field": "colour", "problem": "unknown_field"}

    records = batch_of(tabular, rows)
    records[55] = list(records[55].values())
    with pytest.raises(InvalidInput) as raised:
        scorer.score(records)
    assert raised.value.details == {"record": 55, "field": None, "problem": "not_an_object"}


def test_the_first_bad_record_is_named_whatever_its_problem(tabular, scorer, rows):
    records = batch_of(tabular, rows)
    records[800] = {**records[800], "mean area": "large"}  # found first by a type check over the batch
    records[300] = {**records[300], "worst area": 1e300}  # found by the range check, but earlier in the batch
    with pytest.raises(InvalidInput) as raised:
        scorer.score(records)
    assert raised.value.details == {"record": 300, "field": "worst area", "problem": "out_of_range"}


def test_integer_features_are_checked_over_the_whole_column(tabular, rows):
    schema = [dict(item) for item in tabular.schema]
    schema[2]["dtype"] = "int"
    strict = TabularScorer(tabular.onnx, schema, CLASS_NAMES)
    name = tabular.names[2]
    records = [{**record, name: round(record[name])} for record in records_of(tabular, rows)]
    records[10] = {**records[10], name: 88.0}  # a whole float is a whole number
    np.testing.assert_array_equal(strict.validate(records)[:, 2], [float(r[name]) for r in records])

    records[901] = {**records[901], name: 88.5}
    with pytest.raises(InvalidInput) as raised:
        strict.validate(records)
    assert raised.value.details == {"record": 901, "field": name, "problem": "not_an_integer"}
