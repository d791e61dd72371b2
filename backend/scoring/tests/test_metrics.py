"""Scoring moves its series on /metrics: one prediction per record, its class, and the errors answered."""

from __future__ import annotations

from collections import Counter

import pytest
from django.test import Client
from rest_framework.test import APIClient

from backend.scoring.tests.test_scoring import URL, records_from
from tests.helpers import Scrape

pytestmark = [pytest.mark.django_db(transaction=True)]


def moved(before: Scrape, after: Scrape, name: str, **labels) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_records_scored_count_one_prediction_each_by_class(serve_tabular, model_files, unique_name):
    version = serve_tabular(0)
    client = APIClient()
    records = records_from(model_files["tabular"][0].feature_schema)
    before = Scrape(client)

    body = client.post(URL, {"records": records}, format="json").json()

    after = Scrape(client)
    series = {"model": unique_name, "version": str(version.version), "kind": "tabular"}
    assert moved(before, after, "modelyard_predictions_total", **series) == len(records) == 3
    assert moved(before, after, "modelyard_prediction_latency_seconds_count", **series) == 1  # one per call
    assert moved(before, after, "modelyard_inference_seconds_count", **series) == 1
    latency = moved(before, after, "modelyard_prediction_latency_seconds_sum", **series)
    assert latency == pytest.approx(body["latency_ms"] / 1000, rel=1e-3)
    for label, count in Counter(p["label"] for p in body["predictions"]).items():
        labels = {"model": unique_name, "version": str(version.version), "class_name": label}
        assert moved(before, after, "modelyard_predicted_class_total", **labels) == count


def test_invalid_records_and_requests_count_errors_by_code(serve_tabular, model_files, unique_name):
    version = serve_tabular(0)
    client = APIClient()
    records = records_from(model_files["tabular"][0].feature_schema)
    records[0].pop("mean radius")
    before = Scrape(client)

    invalid = client.post(URL, {"records": records}, format="json")
    malformed = client.post(URL, {"records": "x"}, format="json")

    after = Scrape(client)
    assert (invalid.json()["error"]["code"], malformed.json()["error"]["code"]) == (
        "invalid_record",
        "validation_error",
    )
    errors = "modelyard_prediction_errors_total"
    assert moved(before, after, errors, model=unique_name, kind="tabular", code="invalid_record") == 1
    assert moved(before, after, errors, model="unknown", kind="tabular", code="validation_error") == 1
    series = {"model": unique_name, "version": str(version.version), "kind": "tabular"}
    assert moved(before, after, "modelyard_predictions_total", **series) == 0


def test_the_scoring_form_counts_the_errors_it_shows(serve_detector, unique_name):
    serve_detector(0)  # a detector: the form has no field, and the model refuses records
    client = Client()
    before = Scrape(client)

    page = client.post(f"/scoring/?model={unique_name}", {})

    assert "not a tabular model" in page.content.decode()
    after = Scrape(client)
    assert (
        moved(
            before,
            after,
            "modelyard_prediction_errors_total",
            model=unique_name,
            kind="tabular",
            code="wrong_model_kind",
        )
        == 1
    )
