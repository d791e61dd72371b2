"""The detector trainer: real (tiny) Ultralytics trainings, a real MLflow store and registry."""

import json
import os

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops.data.prepare import SplitSpec, prepare_dataset
from mlops.data.synthetic import ShapesSpec, generate_shapes
from mlops.data.validate import validate_dataset
from mlops.exceptions import InvalidInput, TrainingCancelled
from mlops.inference.features import FEATURE_NAMES
from mlops.registry.entities import PRODUCTION_ALIAS, ArtifactRole, ModelKind
from mlops.tests.training_support import runs_of, training_env
from mlops.training.compare import TAG_COMPARISON
from mlops.training.params import DetectorParams
from mlops.training.tracking import TAG_CONFIG_HASH, TAG_DATA_VERSION
from mlops.training.yolo import pretrained_weights, train_detector

NAME = "shapes-detector"
PARAMS = {"epochs": 2, "imgsz": 64, "batch": 4, "plots": False, "patience": 5}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("yolo")
    raw = generate_shapes(root / "raw", ShapesSpec(count=16, imgsz=64, seed=0))
    report = root / "report.json"
    validate_dataset(raw, report_path=report)
    prepared = prepare_dataset(raw, root / "prepared", SplitSpec(seed=0), validation_report=report)
    with training_env(root, prepared) as shared:
        yield shared


@pytest.fixture(scope="module")
def first(env):
    epochs = []
    outcome = train_detector(
        env["config"], PARAMS, env["data"].path, model_name=NAME, on_epoch=lambda *args: epochs.append(args)
    )
    return outcome, epochs


def test_a_training_registers_an_onnx_version_with_test_metrics(env, first):
    outcome, epochs = first
    version = outcome.version
    assert (version.name, version.version, version.kind) == (NAME, 1, ModelKind.DETECTION)
    assert set(version.artifacts) >= {
        ArtifactRole.WEIGHTS,
        ArtifactRole.ONNX,
        ArtifactRole.REFERENCE,
        ArtifactRole.DATA_MANIFEST,
        ArtifactRole.VALIDATION_REPORT,
    }
    assert {"mAP50", "mAP50-95", "precision", "recall"} <= set(outcome.metrics)
    assert all(0.0 <= value <= 1.0 for value in outcome.metrics.values())
    assert version.metrics == pytest.approx(outcome.metrics)
    assert version.lineage.data_version == env["data"].data_version
    assert version.lineage.config_hash == DetectorParams.resolve(PARAMS).config_hash()
    assert {"torch", "ultralytics", "python"} <= set(version.lineage.packages)
    metadata = env["registry"].load_metadata(version)
    assert metadata["class_names"] == ["circle", "square", "triangle"]
    architecture = DetectorParams.resolve(PARAMS).architecture
    assert (metadata["imgsz"], metadata["architecture"], metadata["task"]) == (64, architecture, "detect")
    # One progress report per epoch, never one for the final evaluation of best.pt.
    assert [(epoch, total) for epoch, total, _ in epochs] == [(1, 2), (2, 2)]
    assert {"mAP50", "mAP50-95", "precision", "recall", "train/box_loss", "val/box_loss"} <= set(epochs[-1][2])
    assert outcome.epochs_run == 2 and 1 <= outcome.best_epoch <= 2


def test_the_onnx_file_takes_any_size_and_records_the_training_size(env, first):
    """Dynamic height and width (serving letterboxes to the smallest rectangle); imgsz in the metadata."""
    import ast

    import onnx

    outcome, _ = first
    path = env["registry"].fetch(outcome.version, [ArtifactRole.ONNX])[ArtifactRole.ONNX]
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3
    assert not dims[2].dim_value and not dims[3].dim_value  # symbolic: any height and width
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert ast.literal_eval(metadata["imgsz"]) == [64, 64]


def test_the_run_holds_epochs_params_lineage_and_files(env, first):
    outcome, _ = first
    client = env["registry"].client
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2" and run.data.params["imgsz"] == "64"
    assert run.data.tags[TAG_DATA_VERSION] == env["data"].data_version
    assert run.data.tags[TAG_CONFIG_HASH] == outcome.version.lineage.config_hash
    history = client.get_metric_history(outcome.run_id, "metrics/mAP50B")
    assert [m.step for m in history] == [0, 1, 2]  # two epochs, then best.pt's final evaluation
    assert run.data.metrics["test/mAP50"] == pytest.approx(outcome.metrics["mAP50"])
    files = {f.path for f in client.list_artifacts(outcome.run_id)}
    assert {"results.csv", "training_params.json", "comparison.json", "weights", "reference", "data"} <= files
    assert {f.path for f in client.list_artifacts(outcome.run_id, "weights")} >= {"weights/best.pt"}


def test_the_registered_detector_loads_with_plain_mlflow(env, first):
    import mlflow.pyfunc

    outcome, _ = first
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{outcome.version.version}")
    outputs = model.predict(np.zeros((1, 3, 64, 64), dtype=np.float32))
    first_output = next(iter(outputs.values())) if isinstance(outputs, dict) else outputs
    assert np.asarray(first_output).shape[0] == 1


def test_the_reference_table_describes_the_validation_images(env, first):
    outcome, _ = first
    path = env["registry"].fetch(outcome.version, [ArtifactRole.REFERENCE])[ArtifactRole.REFERENCE]
    reference = pd.read_parquet(path)
    outputs = ["n_boxes", "mean_confidence", "max_confidence", "box_area_share"]
    expected = ["image", *FEATURE_NAMES, *outputs, "count_circle", "count_square", "count_triangle"]
    assert list(reference.columns) == expected
    assert len(reference) == env["data"].counts["val"]
    assert (reference["width"] == 64).all()
    counts = reference[["count_circle", "count_square", "count_triangle"]].sum(axis=1)
    assert (counts == reference["n_boxes"]).all()
    assert (reference["max_confidence"] >= reference["mean_confidence"]).all()
    assert reference["box_area_share"].between(0, 1).all()


def test_a_new_version_fine_tuned_from_weights_is_compared_with_production(env, first):
    outcome, _ = first
    registry = env["registry"]
    registry.set_alias(NAME, PRODUCTION_ALIAS, outcome.version.version)
    weights = registry.fetch(outcome.version, [ArtifactRole.WEIGHTS])[ArtifactRole.WEIGHTS]
    second = train_detector(
        env["config"], {**PARAMS, "epochs": 1, "weights": str(weights)}, env["data"].path, model_name=NAME
    )
    comparison = second.comparison
    assert (comparison.candidate_version, comparison.baseline_version) == (2, 1)
    # Production's ONNX re-scored on the same test split reproduces its recorded metrics.
    assert comparison.baseline == pytest.approx(outcome.metrics, abs=1e-6)
    assert comparison.deltas["mAP50-95"] == pytest.approx(second.metrics["mAP50-95"] - outcome.metrics["mAP50-95"])
    assert comparison.verdict in {"better", "worse", "equal"}
    stored = json.loads(registry.client.get_model_version(NAME, "2").tags[TAG_COMPARISON])
    assert stored["baseline_version"] == 1


def test_cancelling_stops_training_and_marks_the_run_killed(env, first):
    registry = env["registry"]
    before = len(registry.list_versions(NAME))
    epochs = []
    with pytest.raises(TrainingCancelled) as info:
        train_detector(
            env["config"],
            {**PARAMS, "epochs": 5},
            env["data"].path,
            model_name=NAME,
            on_epoch=lambda *args: epochs.append(args),
            should_stop=lambda: True,
        )
    assert registry.client.get_run(info.value.details["run_id"]).info.status == "KILLED"
    assert len(epochs) <= 1  # stopped inside the first epoch
    assert len(registry.list_versions(NAME)) == before


def test_pretrained_weights_resolution(env, first, tmp_path):
    outcome, _ = first
    weights = env["registry"].fetch(outcome.version, [ArtifactRole.WEIGHTS])[ArtifactRole.WEIGHTS]
    assert pretrained_weights(str(weights), tmp_path) == weights
    with pytest.raises(InvalidInput):
        pretrained_weights(str(tmp_path / "missing.pt"), tmp_path)


@pytest.mark.timeout(60)
def test_unobtainable_pretrained_weights_fall_back_to_scratch(tmp_path):
    from mlops.data.network import probe_http
    from mlops.training.yolo import WEIGHTS_URL

    if probe_http(WEIGHTS_URL, timeout=3) is None:
        pytest.skip("this machine can download Ultralytics weights")
    assert pretrained_weights("yolo11n.pt", tmp_path) is None
    assert not any(tmp_path.iterdir())


def test_mlflow_callback_logs_into_our_run_and_autolog_is_contained(env):
    """Named test_mlflow*: Ultralytics' MLflow callback only runs under pytest for such tests."""
    registry = env["registry"]
    runs_before = {run.info.run_id for run in runs_of(env["config"], registry)}
    experiments_before = {e.name for e in registry.client.search_experiments()}
    experiment_env_before = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    outcome = train_detector(env["config"], {**PARAMS, "epochs": 1}, env["data"].path, model_name="callback-check")

    run = registry.client.get_run(outcome.run_id)
    # Ultralytics logged its own arguments (mosaic, close_mosaic...) into our run.
    assert {"mosaic", "close_mosaic", "epochs"} <= set(run.data.params)
    assert {"weights/best.pt", "weights/last.pt"} <= {
        f.path for f in registry.client.list_artifacts(outcome.run_id, "weights")
    }
    assert {run.info.run_id for run in runs_of(env["config"], registry)} - runs_before == {outcome.run_id}
    assert {e.name for e in registry.client.search_experiments()} == experiments_before
    assert mlflow.active_run() is None
    assert os.environ.get("MLFLOW_EXPERIMENT_NAME") == experiment_env_before

    # Autologging is off again: fitting a scikit-learn model opens no run anywhere.
    from sklearn.linear_model import LogisticRegression

    LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    assert mlflow.active_run() is None
    assert {run.info.run_id for run in runs_of(env["config"], registry)} - runs_before == {outcome.run_id}
    default = registry.client.get_experiment_by_name("Default")
    assert not registry.client.search_runs([default.experiment_id]) if default else True
