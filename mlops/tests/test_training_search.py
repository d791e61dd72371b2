"""Optuna search: trials as nested MLflow runs, pruning on intermediate values, the best registered."""

import pytest

from mlops.data.prepare import SplitSpec, prepare_dataset
from mlops.data.synthetic import ShapesSpec, generate_shapes, load_breast_cancer_table
from mlops.exceptions import InvalidInput, TrainingCancelled
from mlops.tests.training_support import runs_of, training_env
from mlops.training.search import search_detector, search_tabular

SPACE = {
    "max_depth": {"type": "int", "low": 2, "high": 5},
    "learning_rate": {"type": "float", "low": 0.05, "high": 0.5, "log": True},
}
BASE = {"n_estimators": 30, "early_stopping_rounds": 10}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    prepared = prepare_dataset(load_breast_cancer_table(root / "raw"), root / "prepared", SplitSpec(seed=0))
    with training_env(root, prepared) as shared:
        yield shared


def test_a_tabular_search_runs_nested_trials_and_registers_the_best(env):
    reported = []
    outcome = search_tabular(
        env["config"],
        BASE,
        env["data"].path,
        model_name="bc-search",
        n_trials=3,
        space=SPACE,
        on_trial=lambda *args: reported.append(args),
    )
    registry = env["registry"]
    runs = {run.info.run_id: run for run in runs_of(env["config"], registry)}
    parent = runs[outcome.parent_run_id]
    trials = [run for run in runs.values() if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == 3 and len(outcome.trials) == 3
    assert parent.info.status == "FINISHED" and all(run.info.status == "FINISHED" for run in trials)
    assert [args[:2] for args in reported] == [(1, 3), (2, 3), (3, 3)]

    # Each trial reported its validation loss per boosting round; the best has the lowest loss.
    for trial in trials:
        history = registry.client.get_metric_history(trial.info.run_id, "val/logloss")
        assert len(history) == int(trial.data.metrics["rounds"])
    complete = [trial for trial in outcome.trials if trial["state"] == "complete"]
    assert outcome.best_value == min(trial["value"] for trial in complete)

    best = next(trial for trial in outcome.trials if trial["number"] == outcome.best_trial)
    assert outcome.best.run_id == best["run_id"]
    assert outcome.best.version.run_id == best["run_id"]
    assert outcome.best_params == best["params"]
    assert {"roc_auc", "accuracy"} <= set(outcome.best.metrics)
    assert [version.version for version in registry.list_versions("bc-search")] == [1]
    assert registry.client.get_run(best["run_id"]).data.metrics["test/roc_auc"] == pytest.approx(
        outcome.best.metrics["roc_auc"]
    )


def test_weak_trials_are_pruned_on_their_intermediate_values(env):
    # A learning rate far too small cannot keep up with the per-round losses of a sensible one.
    space = {"learning_rate": {"type": "categorical", "choices": [0.3, 0.001]}}
    outcome = search_tabular(
        env["config"],
        {**BASE, "n_estimators": 40},
        env["data"].path,
        model_name="bc-pruned",
        n_trials=6,
        space=space,
        pruner={"n_startup_trials": 1, "n_warmup_steps": 3},
    )
    pruned = [trial for trial in outcome.trials if trial["state"] == "pruned"]
    assert pruned, outcome.trials
    assert {trial["params"]["learning_rate"] for trial in pruned} == {0.001}
    assert outcome.best_params == {"learning_rate": 0.3}
    rounds = env["registry"].client.get_run(pruned[0]["run_id"]).data.metrics["rounds"]
    assert rounds < 40  # stopped at the round the pruner gave up on it


def test_cancelling_a_search_kills_its_runs(env):
    with pytest.raises(TrainingCancelled):
        search_tabular(
            env["config"],
            BASE,
            env["data"].path,
            model_name="bc-cancel",
            n_trials=3,
            space=SPACE,
            should_stop=lambda: True,
        )
    runs = [run for run in runs_of(env["config"], env["registry"]) if "bc-cancel" in run.info.run_name]
    assert {run.info.status for run in runs} == {"KILLED"}
    assert len(runs) == 2  # the search and its first trial


def test_a_search_space_must_name_real_parameters(env):
    with pytest.raises(InvalidInput):
        search_tabular(
            env["config"], BASE, env["data"].path, model_name="bc-x", n_trials=1, space={"depth": {"type": "int"}}
        )


def test_a_detector_search_with_two_tiny_trials(env):
    root = env["root"]
    raw = generate_shapes(root / "shapes", ShapesSpec(count=10, imgsz=64, seed=1))
    prepared = prepare_dataset(raw, root / "shapes-prepared", SplitSpec(seed=0))
    outcome = search_detector(
        env["config"],
        {"epochs": 1, "imgsz": 64, "batch": 4, "plots": False},
        prepared.path,
        model_name="shapes-search",
        n_trials=2,
        space={"lr0": {"type": "float", "low": 0.001, "high": 0.02, "log": True}},
    )
    assert len(outcome.trials) == 2
    assert outcome.best.version.version == 1
    assert outcome.best.version.run_id == outcome.trials[outcome.best_trial]["run_id"]
    assert "mAP50" in outcome.best.metrics
