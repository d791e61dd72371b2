"""1,000 records in one call: parsed and rendered by orjson, checked as one array, logged after the answer."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from django.test import Client
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer

from backend.scoring.models import TabularPrediction
from backend.scoring.parsers import OrjsonRenderer
from backend.scoring.serializers import MAX_RECORDS_PER_CALL
from backend.scoring.tests.test_scoring import xgboost_probabilities

pytestmark = [pytest.mark.django_db(transaction=True)]

URL = "/api/v1/tabular/predictions/"


def batch(schema: list[dict], count: int = MAX_RECORDS_PER_CALL) -> list[dict]:
    """`count` different records inside the schema's ranges."""
    rng = np.random.default_rng(count)
    low = np.array([f["min"] for f in schema])
    high = np.array([f["max"] for f in schema])
    values = rng.uniform(low, high, size=(count, len(schema)))
    return [dict(zip([f["name"] for f in schema], row, strict=True)) for row in values.tolist()]


def post(body) -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Client().post(URL, raw, content_type="application/json")


@pytest.mark.postgres  # the log's multi-row INSERT is written per database
def test_a_thousand_records_score_like_xgboost_and_are_all_logged(serve_tabular, model_files):
    version = serve_tabular(0)
    files = model_files["tabular"][0]
    records = batch(files.feature_schema)

    response = post({"records": records})

    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["request_id", "model", "predictions", "latency_ms"]
    assert body["model"] == {"name": version.model.name, "version": version.version, "label": "v1.0"}
    positive = xgboost_probabilities(files.model, files.feature_schema, records)
    assert len(body["predictions"]) == len(records)
    got = np.array([p["probabilities"]["benign"] for p in body["predictions"]])
    np.testing.assert_allclose(got, positive, atol=1e-5)
    assert len(set(np.round(got, 3).tolist())) > 20, "a constant model proves nothing"
    for index, prediction in enumerate(body["predictions"]):
        assert list(prediction) == ["record", "label", "class_id", "probabilities"]
        assert prediction["record"] == index
        assert prediction["label"] == files.class_names[prediction["class_id"]]
        assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)

    rows = list(TabularPrediction.objects.filter(request_id=body["request_id"]).order_by("record_index"))
    assert [row.record_index for row in rows] == list(range(len(records)))
    assert {(row.model_version_id, row.latency_ms, row.created_at) for row in rows} == {
        (version.pk, body["latency_ms"], rows[0].created_at)
    }
    for row, record, prediction in zip(rows, records, body["predictions"], strict=True):
        assert row.inputs == record  # every value as sent, floats to the last bit
        assert (row.label, row.class_id, row.probabilities) == (
            prediction["label"],
            prediction["class_id"],
            prediction["probabilities"],
        )
        assert row.confidence == prediction["probabilities"][prediction["label"]]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("12.5", "not_a_number"),
        (None, "not_a_number"),
        (False, "not_a_number"),
        ({"value": 1}, "not_a_number"),
        (3.5e38, "out_of_range"),
    ],
)
def test_a_bad_value_late_in_a_batch_names_its_record_and_field(serve_tabular, model_files, value, problem):
    serve_tabular(0)
    records = batch(model_files["tabular"][0].feature_schema)
    records[998]["worst area"] = value

    response = post({"records": records})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_record"
    assert error["details"] == {"record": 998, "field": "worst area", "problem": problem}
    assert error["message"].startswith("record 998, field 'worst area': ")
    assert TabularPrediction.objects.count() == 0


@pytest.mark.parametrize(
    ("literal", "problem"),
    [(b"1e400", "not_finite"), (b"-" + b"9" * 400, "out_of_range"), (b"Infinity", None), (b"NaN", None)],
)
def test_numbers_json_cannot_hold_as_a_double(serve_tabular, model_files, literal, problem):
    """What orjson refuses is read as DRF's parser reads it: huge numbers reach the scorer, which names
    the field; NaN and Infinity are not JSON and stay a parse error."""
    serve_tabular(0)
    records = batch(model_files["tabular"][0].feature_schema, count=3)
    records[2]["mean area"] = "PLACEHOLDER"
    raw = json.dumps({"records": records}).encode().replace(b'"PLACEHOLDER"', literal)

    response = post(raw)

    assert response.status_code == 400
    error = response.json()["error"]
    if problem is None:
        assert error["code"] == "parse_error" and "JSON parse error" in error["message"]
    else:
        assert error["details"] == {"record": 2, "field": "mean area", "problem": problem}


def test_missing_and_unknown_fields_in_a_batch(serve_tabular, model_files):
    serve_tabular(0)
    schema = model_files["tabular"][0].feature_schema
    records = batch(schema)
    del records[500]["mean texture"]
    records[700]["colour"] = 1.0
    error = post({"records": records}).json()["error"]
    assert error["details"] == {"record": 500, "field": "mean texture", "problem": "missing_field"}

    records = batch(schema)
    records[700]["colour"] = 1.0
    error = post({"records": records}).json()["error"]
    assert error["details"] == {"record": 700, "field": "colour", "problem": "unknown_field"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (lambda r: {"records": r * (MAX_RECORDS_PER_CALL + 1)}, "records", "no more than 1000 elements"),
        (lambda r: {"records": [*r, 7]}, "records", "Expected a dictionary of items"),
        (lambda r: {"records": r, "model": None}, "model", "may not be null"),
        (lambda r: {"records": r, "model": 5}, "model", "Not a valid string"),
        (lambda r: {"records": r, "model": "no spaces please"}, "model", "slug"),
        (lambda r: [{"records": r}], "non_field_errors", "Expected a dictionary"),
    ],
    ids=["too-many", "not-an-object", "null-model", "number-model", "bad-slug", "not-an-object-body"],
)
def test_malformed_bodies_get_the_serializers_errors(serve_tabular, model_files, body, field, message):
    serve_tabular(0)
    records = batch(model_files["tabular"][0].feature_schema, count=1)

    response = post(body(records))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"] and message in json.dumps(error["fields"])
    assert TabularPrediction.objects.count() == 0


def test_a_named_model_is_used(serve_tabular, model_files, settings):
    version = serve_tabular(1)
    name = settings.DEFAULT_TABULAR_MODEL
    settings.DEFAULT_TABULAR_MODEL = "some-other-model"
    records = batch(model_files["tabular"][1].feature_schema, count=2)

    body = post({"records": records, "model": name}).json()

    assert body["model"]["name"] == name and body["model"]["version"] == version.version
    assert TabularPrediction.objects.filter(request_id=body["request_id"]).count() == 2


@pytest.mark.parametrize(
    "data",
    [
        {"request_id": str(uuid.uuid4()), "values": [0.1, 1 / 3, 1e-12, 12345678.9, -0.0, 10**18], "ok": True},
        {"error": {"code": "validation_error", "fields": {"records": [ErrorDetail("Bad \u00e9t\u00e9.", code="x")]}}},
        {"error": {"message": "line\u2028separator"}},
        None,
    ],
    ids=["numbers", "error-detail", "line-separator", "empty"],
)
def test_the_renderer_writes_what_drfs_renderer_writes(data):
    assert OrjsonRenderer().render(data) == JSONRenderer().render(data)
    assert OrjsonRenderer().render(data, "application/json; indent=2") == JSONRenderer().render(
        data, "application/json; indent=2"
    )


def test_the_log_names_a_signed_in_caller(serve_tabular, model_files, staff_user):
    version = serve_tabular(0)
    client = Client()
    client.force_login(staff_user)
    records = batch(model_files["tabular"][0].feature_schema, count=3)

    body = client.post(URL, json.dumps({"records": records}), content_type="application/json").json()

    rows = list(TabularPrediction.objects.filter(request_id=body["request_id"]).order_by("record_index"))
    assert [(row.record_index, row.user_id, row.model_version_id) for row in rows] == [
        (index, staff_user.pk, version.pk) for index in range(3)
    ]
    assert [row.inputs for row in rows] == records
    assert rows[0].created_at == rows[2].created_at and rows[0].session_key
