"""The XGBoost trainer: real training on the breast-cancer table, a real MLflow store and registry."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from mlops.data.prepare import SplitSpec, prepare_dataset
from mlops.data.synthetic import load_breast_cancer_table
from mlops.data.validate import validate_dataset
from mlops.exceptions import InvalidInput, TrainingCancelled
from mlops.registry.entities import PRODUCTION_ALIAS, ArtifactRole, ModelKind
from mlops.tests.training_support import runs_of, training_env
from mlops.training.compare import TAG_COMPARISON
from mlops.training.params import TabularParams
from mlops.training.tracking import TAG_CONFIG_HASH, TAG_DATA_VERSION, TAG_GIT_COMMIT
from mlops.training.xgb import predict_proba, train_tabular

NAME = "breast-cancer"
PARAMS = {"n_estimators": 40, "max_depth": 3, "early_stopping_rounds": 10}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("xgb")
    raw = load_breast_cancer_table(root / "raw")
    report = root / "report.json"
    validate_dataset(raw, report_path=report)
    prepared = prepare_dataset(raw, root / "prepared", SplitSpec(seed=0), validation_report=report)
    with training_env(root, prepared) as shared:
        yield shared


@pytest.fixture(scope="module")
def first(env):
    epochs = []
    outcome = train_tabular(
        env["config"], PARAMS, env["data"].path, model_name=NAME, on_epoch=lambda *args: epochs.append(args)
    )
    return outcome, epochs


def test_a_training_registers_a_version_with_metrics_files_and_lineage(env, first):
    outcome, epochs = first
    version = outcome.version
    assert (version.name, version.version, version.kind) == (NAME, 1, ModelKind.TABULAR)
    assert set(version.artifacts) >= {
        ArtifactRole.XGBOOST,
        ArtifactRole.ONNX,
        ArtifactRole.FEATURE_SCHEMA,
        ArtifactRole.REFERENCE,
        ArtifactRole.DATA_MANIFEST,
        ArtifactRole.VALIDATION_REPORT,
    }
    assert set(outcome.metrics) == {"accuracy", "roc_auc", "f1", "log_loss"}
    assert outcome.metrics["roc_auc"] > 0.9 and outcome.metrics["accuracy"] > 0.85
    assert version.metrics == pytest.approx(outcome.metrics)
    assert version.lineage.data_version == env["data"].data_version
    assert version.lineage.config_hash == TabularParams.resolve(PARAMS).config_hash()
    assert version.lineage.run_id == outcome.run_id
    assert {"python", "xgboost", "mlflow"} <= set(version.lineage.packages)
    assert outcome.comparison.verdict == "no_baseline"
    # Progress every 10 rounds, in order, with the validation loss.
    rounds = [args[0] for args in epochs]
    assert rounds == sorted(rounds) and rounds[0] == 10 and epochs[0][1] == PARAMS["n_estimators"]
    assert "val/logloss" in epochs[0][2]
    metadata = env["registry"].load_metadata(version)
    assert metadata["class_names"] == ["malignant", "benign"]
    assert metadata["feature_schema"] == list(env["data"].feature_schema)


def test_the_run_holds_params_per_round_metrics_tags_and_files(env, first):
    outcome, _ = first
    client = env["registry"].client
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == env["registry"].experiment_id()
    assert run.data.params["max_depth"] == "3"
    assert run.data.tags[TAG_DATA_VERSION] == env["data"].data_version
    assert run.data.tags[TAG_CONFIG_HASH] == outcome.version.lineage.config_hash
    assert len(run.data.tags[TAG_GIT_COMMIT]) in (40, len("unknown"))
    assert run.data.metrics["test/roc_auc"] == pytest.approx(outcome.metrics["roc_auc"])
    history = client.get_metric_history(outcome.run_id, "val/logloss")
    assert len(history) == outcome.epochs_run and [m.step for m in history] == list(range(outcome.epochs_run))
    files = {f.path for f in client.list_artifacts(outcome.run_id, "data")}
    assert files == {"data/manifest.json", "data/validation_report.json"}
    assert "comparison.json" in {f.path for f in client.list_artifacts(outcome.run_id)}


def test_the_registered_model_loads_with_plain_mlflow(env, first):
    import mlflow.pyfunc

    outcome, _ = first
    data = env["data"]
    test = pd.read_parquet(data.split_table("test"))
    names = [feature["name"] for feature in data.feature_schema]
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{outcome.version.version}")
    predicted = np.asarray(model.predict(test[names]))
    booster_path = env["registry"].fetch(outcome.version, [ArtifactRole.XGBOOST])[ArtifactRole.XGBOOST]
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(booster_path))
    expected = predict_proba(booster, test, data.feature_schema)[:, 1]
    assert predicted.reshape(len(test), -1)[:, -1] == pytest.approx(expected, abs=1e-6)


def test_the_reference_table_holds_validation_features_and_outputs(env, first):
    outcome, _ = first
    path = env["registry"].fetch(outcome.version, [ArtifactRole.REFERENCE])[ArtifactRole.REFERENCE]
    reference = pd.read_parquet(path)
    names = [feature["name"] for feature in env["data"].feature_schema]
    assert list(reference.columns) == [*names, "proba_malignant", "proba_benign", "prediction", "target"]
    assert len(reference) == env["data"].counts["val"]
    assert np.allclose(reference["proba_malignant"] + reference["proba_benign"], 1.0, atol=1e-5)


def test_a_new_version_is_compared_with_production_on_the_same_test_split(env, first):
    outcome, _ = first
    registry = env["registry"]
    registry.set_alias(NAME, PRODUCTION_ALIAS, outcome.version.version)
    second = train_tabular(
        env["config"], {**PARAMS, "max_depth": 2, "learning_rate": 0.3}, env["data"].path, model_name=NAME
    )
    comparison = second.comparison
    assert (comparison.candidate_version, comparison.baseline_version) == (2, 1)
    # The production model re-scored on the same split gives exactly its recorded test metrics.
    assert comparison.baseline == pytest.approx(outcome.metrics)
    assert comparison.deltas["roc_auc"] == pytest.approx(second.metrics["roc_auc"] - outcome.metrics["roc_auc"])
    assert comparison.verdict in {"better", "worse", "equal"}
    assert (comparison.verdict == "better") == (comparison.deltas["roc_auc"] > 1e-9)
    stored = registry.client.get_model_version(NAME, "2").tags[TAG_COMPARISON]
    assert json.loads(stored) == comparison.to_dict()


def test_cancelling_marks_the_run_killed_and_registers_nothing(env, first):
    registry = env["registry"]
    before = len(registry.list_versions(NAME))
    polls = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(TrainingCancelled) as info:
        train_tabular(env["config"], PARAMS, env["data"].path, model_name=NAME, should_stop=should_stop)
    run = registry.client.get_run(info.value.details["run_id"])
    assert run.info.status == "KILLED"
    assert len(registry.list_versions(NAME)) == before


def test_a_failure_marks_the_run_failed_with_the_error(env, first):
    broken = env["root"] / "broken"
    shutil.copytree(env["data"].path, broken)
    frame = pd.read_parquet(broken / "val.parquet").drop(columns=["mean radius"])
    frame.to_parquet(broken / "val.parquet", index=False)
    with pytest.raises(InvalidInput):
        train_tabular(env["config"], PARAMS, broken, model_name=NAME)
    failed = [run for run in runs_of(env["config"], env["registry"]) if run.info.status == "FAILED"]
    assert len(failed) == 1
    assert "mean radius" in failed[0].data.tags["modelyard.error"]


def test_unknown_parameters_are_refused_before_anything_runs(env):
    with pytest.raises(InvalidInput) as info:
        train_tabular(env["config"], {"n_trees": 3}, env["data"].path, model_name=NAME)
    assert info.value.code == "bad_params"
