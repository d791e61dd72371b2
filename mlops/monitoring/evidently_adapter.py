"""The one place Modelyard talks to Evidently: its data-drift report in, plain Python out.

Everything Evidently-specific (report classes, the snapshot's JSON layout, the names of its
statistical tests) stays in this module, so an Evidently upgrade touches one file and
mlops/tests/test_monitoring_evidently_adapter.py says what changed. Importing Evidently takes
seconds: callers import this module lazily, when a check actually runs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations import stattests
from evidently.legacy.calculations.stattests.registry import StatTest
from evidently.metrics import DriftedColumnsCount, ValueDrift
from evidently.presets import DataDriftPreset

logger = logging.getLogger(__name__)

_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"
_FAILED = "FAIL"


def run_data_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str] = (),
    categorical: Sequence[str] = (),
    method: str | None = None,
    threshold: float | None = None,
    column_methods: Mapping[str, str] | None = None,
    column_thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    html: bool = True,
) -> dict:
    """Evidently's data drift of `current` against `reference` over the given columns.

    `method`/`threshold` apply to every column, `column_methods`/`column_thresholds` override them
    per column; None leaves the choice to Evidently. Returns
    `{"columns": [{"column", "kind", "method", "score", "threshold", "drifted"}, ...],
    "dataset_drift", "drifted_share", "drifted_count", "html"}` with Evidently's own verdicts;
    `html` is "" unless asked for (rendering the report's dashboard doubles the cost).
    """
    columns = [*numerical, *categorical]
    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    settings = {
        "method": method,
        "threshold": threshold,
        "per_column_method": dict(column_methods) if column_methods else None,
        "per_column_threshold": dict(column_thresholds) if column_thresholds else None,
    }
    with warnings.catch_warnings():
        # Constant columns make numpy/scipy warn about 0/0 inside Evidently's plots and tests.
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report(_metrics(columns, drift_share, settings, html), include_tests=True).run(
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        )
        page = snapshot.get_html_str(as_iframe=False) if html else ""
    result = _read(snapshot.dict(), set(categorical))
    result["html"] = page
    return result


def _metrics(columns: list[str], drift_share: float, settings: dict, html: bool) -> list:
    """The preset when a dashboard is wanted, else the same metrics without its drift-table widget.

    DataDriftPreset is DriftedColumnsCount plus one ValueDrift per column; only its rendering (the
    table of distributions) is extra, so both lists give the same numbers.
    """
    if html:
        return [DataDriftPreset(columns=columns, drift_share=drift_share, **settings)]
    per_method = settings["per_column_method"] or {}
    per_threshold = settings["per_column_threshold"] or {}
    return [
        DriftedColumnsCount(columns=columns, drift_share=drift_share, **settings),
        *(
            ValueDrift(
                column=column,
                method=per_method.get(column, settings["method"]),
                threshold=per_threshold.get(column, settings["threshold"]),
            )
            for column in columns
        ),
    ]


def _read(snapshot: dict, categorical: set[str]) -> dict:
    """Per-column scores and verdicts and the dataset verdict out of the snapshot's JSON form."""
    failed = {test["metric_config"]["metric_id"] for test in snapshot["tests"] if test["status"] == _FAILED}
    columns, count = [], None
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"] == _DRIFTED_COUNT:
            count = metric
        elif config["type"] == _VALUE_DRIFT:
            columns.append(
                {
                    "column": config["column"],
                    "kind": "categorical" if config["column"] in categorical else "numerical",
                    "method": method_name(config["method"]),
                    "score": float(metric["value"]),
                    "threshold": float(config["threshold"]),
                    "drifted": metric["id"] in failed,
                }
            )
    if count is None:
        raise RuntimeError("Evidently's snapshot has no DriftedColumnsCount metric")
    return {
        "columns": columns,
        "dataset_drift": count["id"] in failed,
        "drifted_share": float(count["value"]["share"]),
        "drifted_count": int(count["value"]["count"]),
    }


def method_name(label: str) -> str:
    """Evidently's registered test name ("ks") for the label a snapshot may carry ("K-S p_value").

    An auto-chosen test is reported by its display name, a requested one by its name; returning the
    name in both cases keeps the value usable as a `method` setting.
    """
    return _display_names().get(label, label)


def stat_tests() -> dict[str, tuple[str, ...]]:
    """Every drift test Evidently registers, by name, with the column kinds it accepts."""
    kinds = {"num": "numerical", "cat": "categorical", "text": "text"}
    return {
        test.name: tuple(kinds.get(kind.value, kind.value) for kind in test.allowed_feature_types)
        for test in _registered()
    }


def _display_names() -> dict[str, str]:
    return {test.display_name: test.name for test in _registered()}


def _registered() -> list[StatTest]:
    return [value for value in vars(stattests).values() if isinstance(value, StatTest)]
