"""The classifier trainer: real (tiny) Ultralytics trainings, a real MLflow store and registry."""

import ast
import json
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops.data.prepare import SplitSpec, prepare_dataset
from mlops.data.synthetic import ClassificationSpec, generate_classification
from mlops.data.validate import validate_dataset
from mlops.exceptions import InvalidInput, TrainingCancelled
from mlops.inference.features import FEATURE_NAMES
from mlops.registry.entities import PRODUCTION_ALIAS, ArtifactRole
from mlops.tests.training_support import training_env
from mlops.training.compare import TAG_COMPARISON
from mlops.training.params import CLASSIFIER_MODELS, ClassifierParams
from mlops.training.tracking import TAG_CONFIG_HASH, TAG_DATA_VERSION
from mlops.training.yolo import build_model
from mlops.training.yolo_classify import build_classifier, register_classifier, train_classifier

NAME = "shapes-classifier"
CLASSES = ["circle", "square", "triangle"]
PARAMS = {"epochs": 2, "imgsz": 32, "batch": 8, "plots": False, "patience": 5}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    raw = generate_classification(root / "raw", ClassificationSpec(per_class=10, imgsz=32, seed=0))
    report = root / "report.json"
    validate_dataset(raw, report_path=report)
    prepared = prepare_dataset(raw, root / "prepared", SplitSpec(seed=0), validation_report=report)
    with training_env(root, prepared) as shared:
        yield shared


@pytest.fixture(scope="module")
def built(env):
    """One two-epoch training, exported, evaluated on the test split, its reference saved; not registered."""
    epochs = []
    run, build = build_classifier(
        env["config"],
        ClassifierParams.resolve(PARAMS),
        env["data"],
        env["root"] / "work",
        model_name=NAME,
        on_epoch=lambda *args: epochs.append(args),
    )
    return run, build, epochs


def test_each_epoch_logs_top1_top5_and_the_losses(env, built):
    run, _, epochs = built
    client = env["registry"].client
    # One progress report per epoch, never one for the final evaluation of best.pt.
    assert [(epoch, total) for epoch, total, _ in epochs] == [(1, 2), (2, 2)]
    assert {"top1", "top5", "train/loss", "val/loss"} <= set(epochs[-1][2])
    for key in ("metrics/accuracy_top1", "metrics/accuracy_top5"):
        history = client.get_metric_history(run.run_id, key)
        assert [m.step for m in history] == [0, 1, 2]  # two epochs, then best.pt's final evaluation
        assert all(0.0 <= m.value <= 1.0 for m in history)
    for key in ("train/loss", "val/loss"):
        assert [m.step for m in client.get_metric_history(run.run_id, key)][:2] == [0, 1]


def test_the_run_holds_params_lineage_test_metrics_and_files(env, built):
    run, build, _ = built
    client = env["registry"].client
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params["epochs"] == "2" and stored.data.params["imgsz"] == "32"
    assert stored.data.params["model"] == "yolo11n-cls.yaml"
    assert stored.data.tags[TAG_DATA_VERSION] == env["data"].data_version
    assert stored.data.tags[TAG_CONFIG_HASH] == ClassifierParams.resolve(PARAMS).config_hash()
    assert stored.data.tags["modelyard.kind"] == "classification"
    assert stored.data.metrics["test/top1"] == pytest.approx(build.metrics["top1"])
    assert stored.data.metrics["epochs_run"] == 2
    files = {f.path for f in client.list_artifacts(run.run_id)}
    assert {"results.csv", "training_params.json", "weights", "reference", "data"} <= files
    assert {f.path for f in client.list_artifacts(run.run_id, "weights")} >= {"weights/best.pt"}


def test_the_test_split_gives_top1_top5_and_each_class_accuracy(built):
    _, build, _ = built
    metrics = build.metrics
    assert set(metrics) == {"top1", "top5", *(f"accuracy/{name}" for name in CLASSES)}
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert metrics["top5"] == 1.0  # three classes: the top five guesses always hold the right one
    assert metrics["top1"] == pytest.approx(np.mean([metrics[f"accuracy/{name}"] for name in CLASSES]))


def test_the_onnx_file_records_the_classes_and_the_training_size(built):
    import onnx

    _, build, _ = built
    model = onnx.load(str(build.onnx))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3 and not dims[2].dim_value and not dims[3].dim_value  # any height and width
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == len(CLASSES)
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata["task"] == "classify"
    assert ast.literal_eval(metadata["imgsz"]) == [32, 32]
    assert ast.literal_eval(metadata["names"]) == dict(enumerate(CLASSES))


def test_the_reference_describes_each_test_image(env, built):
    _, build, _ = built
    reference = pd.read_parquet(build.reference)
    assert list(reference.columns) == ["image", *FEATURE_NAMES, "predicted_class", "top1_confidence"]
    assert len(reference) == env["data"].counts["test"]
    assert set(reference["image"].str.split("/").str[0]) == set(CLASSES)
    assert set(reference["predicted_class"]) <= set(CLASSES)
    assert reference["top1_confidence"].between(1 / len(CLASSES) - 1e-6, 1).all()
    assert (reference["width"] == 32).all()


def test_cancelling_stops_training_and_marks_the_run_killed(env, built):
    registry = env["registry"]
    epochs = []
    with pytest.raises(TrainingCancelled) as info:
        build_classifier(
            env["config"],
            ClassifierParams.resolve({**PARAMS, "epochs": 5}),
            env["data"],
            env["root"] / "cancelled",
            model_name=NAME,
            on_epoch=lambda *args: epochs.append(args),
            should_stop=lambda: True,
        )
    assert registry.client.get_run(info.value.details["run_id"]).info.status == "KILLED"
    assert len(epochs) <= 1  # stopped inside the first epoch


# -- registration ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(env, built):
    run, build, _ = built
    return register_classifier(
        env["registry"],
        run,
        build,
        ClassifierParams.resolve(PARAMS),
        env["data"],
        model_name=NAME,
        description="a test classifier",
        started=0.0,
    )


def test_a_build_registers_as_a_version_with_lineage_and_metadata(env, built, registered):
    _, build, _ = built
    version = registered.version
    assert (version.name, version.version, str(version.kind)) == (NAME, 1, "classification")
    assert set(version.artifacts) >= {
        ArtifactRole.WEIGHTS,
        ArtifactRole.ONNX,
        ArtifactRole.REFERENCE,
        ArtifactRole.DATA_MANIFEST,
        ArtifactRole.VALIDATION_REPORT,
    }
    assert version.metrics == pytest.approx(build.metrics)
    assert version.lineage.data_version == env["data"].data_version
    assert version.lineage.config_hash == ClassifierParams.resolve(PARAMS).config_hash()
    assert {"torch", "ultralytics", "python"} <= set(version.lineage.packages)
    metadata = env["registry"].load_metadata(version)
    assert metadata["class_names"] == CLASSES
    assert (metadata["imgsz"], metadata["architecture"], metadata["task"]) == (32, "yolo11n-cls", "classify")
    assert registered.comparison.verdict == "no_baseline"
    assert registered.summary()["metrics"]["top1"] == pytest.approx(build.metrics["top1"])


def test_the_registered_classifier_loads_with_plain_mlflow(registered):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{registered.version.version}")
    outputs = model.predict(np.zeros((1, 3, 32, 32), dtype=np.float32))
    scores = np.asarray(next(iter(outputs.values())) if isinstance(outputs, dict) else outputs)
    assert scores.shape == (1, len(CLASSES))
    assert scores.sum() == pytest.approx(1.0, abs=1e-4)  # Ultralytics' classify head ends in softmax


def test_the_registered_version_serves_what_its_reference_recorded(env, registered):
    """Serving (the registry's loader, ONNX Runtime) and the training reference agree image by image."""
    from mlops.inference.images import decode_image
    from mlops.inference.loader import smoke_test

    registry = env["registry"]
    info, predictor = registry.load(NAME, registered.version.version)
    assert smoke_test(predictor, registry.load_metadata(info)).ok
    reference = pd.read_parquet(registry.fetch(info, [ArtifactRole.REFERENCE])[ArtifactRole.REFERENCE])
    for row in reference.itertuples():
        data = (env["data"].split_dir("test") / row.image).read_bytes()
        top1 = predictor.predict(decode_image(data, max_pixels=10**6, max_side=10**4)).top1
        assert top1.class_name == row.predicted_class
        assert top1.probability == pytest.approx(row.top1_confidence, abs=1e-4)


def test_a_new_version_fine_tuned_from_weights_is_compared_with_production(env, registered):
    registry = env["registry"]
    registry.set_alias(NAME, PRODUCTION_ALIAS, registered.version.version)
    weights = registry.fetch(registered.version, [ArtifactRole.WEIGHTS])[ArtifactRole.WEIGHTS]
    second = train_classifier(
        env["config"], {**PARAMS, "epochs": 1, "weights": str(weights)}, env["data"].path, model_name=NAME
    )
    comparison = second.comparison
    assert (comparison.candidate_version, comparison.baseline_version) == (2, 1)
    # Production's ONNX re-scored on the same test split reproduces its recorded metrics.
    assert comparison.baseline == pytest.approx(registered.metrics, abs=1e-6)
    assert comparison.deltas["top1"] == pytest.approx(second.metrics["top1"] - registered.metrics["top1"])
    assert comparison.verdict in {"better", "worse", "equal"}
    stored = json.loads(registry.client.get_model_version(NAME, "2").tags[TAG_COMPARISON])
    assert stored["baseline_version"] == 1


def test_a_cancelled_training_registers_nothing(env, registered):
    registry = env["registry"]
    before = len(registry.list_versions(NAME))
    with pytest.raises(TrainingCancelled) as info:
        train_classifier(env["config"], PARAMS, env["data"].path, model_name=NAME, should_stop=lambda: True)
    assert registry.client.get_run(info.value.details["run_id"]).info.status == "KILLED"
    assert len(registry.list_versions(NAME)) == before


# -- parameters and model building ------------------------------------------------------------


def test_classifier_params_default_small_and_refuse_what_cannot_train():
    params = ClassifierParams()
    assert (params.model, params.imgsz, params.architecture) == ("yolo11n-cls.yaml", 64, "yolo11n-cls")
    assert params.ultralytics_args()["nbs"] == params.batch
    # Measured to learn params.yaml's synthetic set from scratch in about a minute (see the docstring).
    assert (params.epochs, params.batch, params.optimizer, params.lr0) == (15, 16, "AdamW", 0.0005)
    assert params.ultralytics_args()["auto_augment"] is None and params.ultralytics_args()["erasing"] == 0.0
    assert ClassifierParams.resolve({}) == params  # params.yaml's train_classifier says the same
    assert ClassifierParams().extra is not params.extra  # each instance its own mapping
    # A job's own extra is laid over the light augmentation, not instead of it.
    tuned = ClassifierParams.resolve({"extra": {"fliplr": 0.0, "erasing": 0.4}}).ultralytics_args()
    assert (tuned["fliplr"], tuned["erasing"], tuned["auto_augment"], tuned["hsv_v"]) == (0.0, 0.4, None, 0.3)
    for model in CLASSIFIER_MODELS:
        assert ClassifierParams(model=model).model == model
    assert ClassifierParams(model="yolo11n-cls.pt").architecture == "yolo11n-cls"
    bad = (
        {"model": "yolo11n.yaml"},  # a detector
        {"model": "resnet18"},
        {"imgsz": 50},
        {"epochs": 0},
        {"extra": {"data": "elsewhere"}},
        {"extra": {"task": "detect"}},
        {"colour": "red"},
    )
    for values in bad:
        with pytest.raises(InvalidInput) as info:
            ClassifierParams.resolve(values)
        assert info.value.code == "bad_params"


def _offline(url: str) -> bool:
    from mlops.data.network import probe_http

    return probe_http(url, timeout=3) is not None


@pytest.mark.timeout(60)
def test_a_torchvision_backbone_without_its_weights_builds_from_scratch(tmp_path, caplog):
    from mlops.training.yolo import TORCHVISION_WEIGHTS_URL

    if not _offline(TORCHVISION_WEIGHTS_URL):
        pytest.skip("this machine can download torchvision weights")
    with caplog.at_level(logging.INFO, logger="mlops.training.yolo"):
        model = build_model(ClassifierParams(model="yolo11-cls-resnet18.yaml"), tmp_path / "weights")
    assert model.task == "classify"
    written = yaml.safe_load((tmp_path / "weights" / "yolo11-cls-resnet18.yaml").read_text())
    assert written["backbone"][0][3][2] is None  # the backbone's weights argument
    messages = caplog.text
    assert "training.pretrained_unavailable weights=torchvision:resnet18/DEFAULT" in messages


@pytest.mark.timeout(60)
def test_an_unobtainable_classifier_checkpoint_falls_back_to_its_yaml(tmp_path, caplog):
    from mlops.training.yolo import WEIGHTS_URL

    if not _offline(WEIGHTS_URL):
        pytest.skip("this machine can download Ultralytics weights")
    with caplog.at_level(logging.INFO, logger="mlops.training.yolo"):
        model = build_model(ClassifierParams(model="yolo11n-cls.pt"), tmp_path / "weights")
    assert model.task == "classify"
    assert "training.pretrained_unavailable weights=yolo11n-cls.pt" in caplog.text
    assert "training.from_scratch architecture=yolo11n-cls.yaml task=classify" in caplog.text
    assert not any((tmp_path / "weights").glob("*.pt"))
