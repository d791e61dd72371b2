"""Tabular scoring through the API and the form, against real XGBoost models promoted in the registry."""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient

from backend.scoring.models import TabularPrediction
from tests.factories import VersionFactory

pytestmark = [pytest.mark.django_db(transaction=True)]

URL = "/api/v1/tabular/predictions/"


def records_from(schema: list[dict]) -> list[dict]:
    return [
        {f["name"]: f["mean"] for f in schema},
        {f["name"]: f["min"] for f in schema},
        {f["name"]: f["max"] for f in schema},
    ]


def xgboost_probabilities(model_path, schema, records) -> np.ndarray:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(model_path))
    names = [f["name"] for f in schema]
    matrix = np.array([[r[name] for name in names] for r in records], dtype=np.float32)
    return booster.predict(xgb.DMatrix(matrix, feature_names=names))


def test_records_are_scored_like_xgboost_itself_and_logged(serve_tabular, model_files):
    version = serve_tabular(0)
    files = model_files["tabular"][0]
    records = records_from(files.feature_schema)
    records[1] = dict(reversed(list(records[1].items())))  # key order must not matter

    response = APIClient().post(URL, {"records": records}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == {"name": version.model.name, "version": version.version, "label": "v1.0"}
    positive = xgboost_probabilities(files.model, files.feature_schema, records)
    for index, prediction in enumerate(body["predictions"]):
        assert prediction["record"] == index
        probabilities = prediction["probabilities"]
        assert list(probabilities) == files.class_names
        assert probabilities["benign"] == pytest.approx(float(positive[index]), abs=1e-5)
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert prediction["label"] == max(probabilities, key=probabilities.get)
        assert prediction["class_id"] == files.class_names.index(prediction["label"])
    rows = list(TabularPrediction.objects.filter(request_id=body["request_id"]).order_by("record_index"))
    assert [row.record_index for row in rows] == [0, 1, 2]
    assert all(row.model_version_id == version.pk and row.latency_ms > 0 for row in rows)
    assert rows[1].inputs == {f["name"]: f["min"] for f in files.feature_schema}
    assert rows[0].label == body["predictions"][0]["label"]


@pytest.mark.parametrize(
    ("mutate", "record", "field", "problem"),
    [
        (lambda r: r.pop("mean radius"), 1, "mean radius", "missing_field"),
        (lambda r: r.update({"worst area": "big"}), 1, "worst area", "not_a_number"),
        (lambda r: r.update({"colour": 3.0}), 1, "colour", "unknown_field"),
        (lambda r: r.update({"mean texture": True}), 1, "mean texture", "not_a_number"),
    ],
)
def test_validation_errors_name_the_record_and_field(serve_tabular, model_files, mutate, record, field, problem):
    serve_tabular(0)
    records = records_from(model_files["tabular"][0].feature_schema)
    mutate(records[1])

    response = APIClient().post(URL, {"records": records}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_record"
    assert error["details"] == {"record": record, "field": field, "problem": problem}
    assert f"record {record}" in error["message"] and field in error["message"]
    assert TabularPrediction.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "records"), ({"records": []}, "records"), ({"records": "x"}, "records"), ({"records": [1]}, "records")],
)
def test_malformed_requests_name_the_field(serve_tabular, payload, field):
    serve_tabular(0)
    response = APIClient().post(URL, payload, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["fields"]


def test_no_production_version_is_a_clear_503(model_files, unique_name, settings):
    files = model_files["tabular"][0]
    VersionFactory(name=unique_name, kind="tabular", files=files, metrics={})
    settings.DEFAULT_TABULAR_MODEL = unique_name
    response = APIClient().post(URL, {"records": records_from(files.feature_schema)}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_production_version"

    page = Client().get("/scoring/")
    assert "No version of" in page.content.decode() and "in production yet" in page.content.decode()


def test_scoring_form_fields_come_from_the_schema(serve_tabular, model_files):
    version = serve_tabular(1)
    schema = model_files["tabular"][1].feature_schema
    client = Client()

    page = client.get("/scoring/").content.decode()
    names = re.findall(r'<input name="([^"]+)" value=', page)
    assert names == [f["name"] for f in schema]
    assert version.semantic_label in page

    values = {f["name"]: str(f["max"]) for f in schema}
    scored = client.post("/scoring/", values).content.decode()
    label = re.search(r'id="predicted-label">([^<]+)<', scored).group(1)
    assert label in ("malignant", "benign")
    row = TabularPrediction.objects.get()
    assert row.source == "web" and row.label == label and row.session_key

    values["mean radius"] = "twelve"
    refused = client.post("/scoring/", values).content.decode()
    assert "enter a number" in refused and 'id="predicted-label"' not in refused
    assert TabularPrediction.objects.count() == 1


def test_form_without_a_model(settings):
    settings.DEFAULT_TABULAR_MODEL = "nothing-registered"
    page = Client().get("/scoring/").content.decode()
    assert "There is no model named" in page
