"""What we read from Evidently is still there: these fail the day an upgrade changes its shapes or choices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.monitoring import evidently_adapter
from mlops.monitoring.drift import METHODS
from mlops.monitoring.evidently_adapter import method_name, run_data_drift, stat_tests

COLUMN_KEYS = {"column", "kind", "method", "score", "threshold", "drifted"}
P_VALUE_TESTS = {"ks", "chisquare", "z"}


def frames(n_reference: int, n_current: int, *, shift: float = 0.0, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def table(n: int, offset: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.normal(offset, 1, n),
                "b": rng.normal(0, 1, n),
                "count": rng.poisson(1.0, n).astype(float),
                "colour": rng.choice(["red", "green", "blue"], n).astype(object),
            }
        )

    return table(n_reference, 0.0), table(n_current, shift)


def run(reference, current, **options):
    return run_data_drift(reference, current, numerical=["a", "b", "count"], categorical=["colour"], **options)


def test_the_result_is_plain_python_with_evidentlys_verdicts():
    reference, current = frames(400, 300, shift=1.0)
    result = run(reference, current, column_methods={"b": "wasserstein"}, column_thresholds={"a": 0.01}, html=False)
    assert set(result) == {"columns", "dataset_drift", "drifted_share", "drifted_count", "html"}
    columns = {item["column"]: item for item in result["columns"]}
    assert set(columns) == {"a", "b", "count", "colour"}
    assert all(set(item) == COLUMN_KEYS for item in columns.values())
    assert columns["colour"]["kind"] == "categorical" and columns["a"]["kind"] == "numerical"
    # Requested tests come back by name, automatic ones too (the snapshot labels them "K-S p_value"...).
    assert columns["b"]["method"] == "wasserstein" and columns["b"]["threshold"] == pytest.approx(0.1)
    assert columns["a"]["method"] == "ks" and columns["a"]["threshold"] == pytest.approx(0.01)
    assert columns["a"]["drifted"] and columns["a"]["score"] < 0.01
    for item in columns.values():
        assert isinstance(item["score"], float) and isinstance(item["drifted"], bool)
        below = item["score"] < item["threshold"]
        assert item["drifted"] == (below if item["method"] in P_VALUE_TESTS else not below), item
    drifted = sum(item["drifted"] for item in columns.values())
    assert result["drifted_count"] == drifted
    assert result["drifted_share"] == pytest.approx(drifted / 4)
    assert result["dataset_drift"] == (result["drifted_share"] >= 0.5)
    assert result["html"] == ""


def test_the_dashboard_path_gives_the_same_numbers_and_an_html_page():
    reference, current = frames(300, 200, shift=0.5)
    options = {"column_methods": {"count": "jensenshannon"}, "drift_share": 0.3}
    plain = run(reference, current, html=False, **options)
    page = run(reference, current, html=True, **options)
    assert page["columns"] == plain["columns"]
    assert (page["dataset_drift"], page["drifted_share"]) == (plain["dataset_drift"], plain["drifted_share"])
    assert page["html"].lstrip().lower().startswith("<!doctype html>") and "</html>" in page["html"]


def test_the_drift_share_decides_the_dataset_verdict():
    reference, _ = frames(300, 1)
    current = reference.assign(a=reference["a"] + 1.0)  # only "a" moves: a quarter of the columns
    assert run(reference, current, drift_share=0.25, html=False)["dataset_drift"]
    assert not run(reference, current, drift_share=0.5, html=False)["dataset_drift"]


def test_evidentlys_automatic_choice_is_what_the_detector_works_around():
    small, small_current = frames(500, 100)
    chosen = {item["column"]: item["method"] for item in run(small, small_current, html=False)["columns"]}
    # Up to 1000 reference rows: K-S, and chi-square for a numerical column with few values.
    assert chosen["a"] == "ks" and chosen["colour"] == "chisquare"
    assert chosen["count"] in {"chisquare", "ks"}  # chi-square up to 5 distinct values
    large, _ = frames(2000, 1)
    chosen = {item["column"]: item["method"] for item in run(large, small_current, html=False)["columns"]}
    # Above 1000 reference rows: distances, whatever the size of the window.
    assert chosen["a"] == "wasserstein" and chosen["colour"] == "jensenshannon"


def test_chi_square_flags_a_single_value_the_reference_never_had():
    reference = pd.DataFrame({"n": np.tile([0.0, 1.0, 2.0], 100)})
    current = pd.DataFrame({"n": np.append(np.tile([0.0, 1.0, 2.0], 100), 3.0)})
    column = run_data_drift(reference, current, numerical=["n"], html=False)["columns"][0]
    assert column["method"] == "chisquare" and column["drifted"] and column["score"] == 0.0


def test_the_known_tests_match_evidentlys_registry():
    registered = {name: kinds for name, kinds in stat_tests().items() if "text" not in kinds}
    assert {name: set(kinds) for name, kinds in registered.items()} == {
        name: set(kinds) for name, kinds in METHODS.items()
    }
    assert method_name("K-S p_value") == "ks"
    assert method_name("Wasserstein distance (normed)") == "wasserstein"
    assert method_name("ks") == "ks"


def test_this_is_the_only_module_importing_evidently():
    from pathlib import Path

    root = Path(evidently_adapter.__file__).resolve().parents[2]
    importing = sorted(
        str(path.relative_to(root))
        for folder in ("mlops", "backend", "tests", "bench", "scripts")
        if (root / folder).is_dir()
        for path in (root / folder).rglob("*.py")
        if any(
            line.lstrip().startswith(("import evidently", "from evidently"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    )
    assert importing == ["mlops/monitoring/evidently_adapter.py"]
