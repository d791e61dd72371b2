"""From a version's files to a predictor, and the smoke test that must pass before it serves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mlops.exceptions import MlopsError, SmokeTestFailed
from mlops.inference.classifier import OnnxClassifier, TorchClassifier
from mlops.inference.detector import OnnxDetector, TorchDetector
from mlops.inference.loader import (
    SmokeResult,
    load_checked_predictor,
    load_predictor,
    sample_image,
    serving_roles,
    smoke_test,
)
from mlops.inference.tabular import TabularScorer, XGBoostScorer
from mlops.tests.classifier_support import NAMES as CLASSIFIER_NAMES
from mlops.tests.classifier_support import claimed_probabilities_metadata, scores_graph
from mlops.tests.test_inference_detector import NAMES, asset, build_yolo, export_onnx, ultralytics_env
from mlops.tests.test_inference_tabular import CLASS_NAMES, train_breast_cancer


@pytest.fixture(scope="module")
def detector_files(tmp_path_factory) -> dict:
    ultralytics_env()
    directory = tmp_path_factory.mktemp("loader-yolo")
    pt = build_yolo("yolo11n", directory)
    (directory / "exported").mkdir()
    return {"weights": pt, "onnx": export_onnx(pt, directory / "exported" / "model.onnx")}


@pytest.fixture(scope="module")
def tabular_files(tmp_path_factory):
    return train_breast_cancer(tmp_path_factory.mktemp("loader-tabular"))


DETECTION_METADATA = {"class_names": NAMES, "imgsz": 320, "architecture": "yolo11n", "task": "detect"}


CLASSIFICATION_METADATA = {
    "class_names": CLASSIFIER_NAMES,
    "imgsz": 96,
    "architecture": "yolo11n-cls",
    "task": "classify",
}


def tabular_metadata(files) -> dict:
    return {"class_names": CLASS_NAMES, "feature_schema": files.schema, "target": "diagnosis"}


def save_model(graph, path, *, opset: int = 17, metadata: dict | None = None):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def nan_detector(path):
    """A graph with a YOLO-shaped output full of NaN: loads fine, must fail the smoke test."""
    nan = helper.make_tensor("nan", TensorProto.FLOAT, [1, 7, 84], [float("nan")] * (7 * 84))
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["nan", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nan_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, 84])],
        initializer=[nan, zero],
    )
    names = "{0: 'cat', 1: 'dog', 2: 'bird'}"
    return save_model(graph, path, metadata={"names": names, "stride": "32", "task": "detect", "end2end": "False"})


def unnormalised_scorer(path, n_features: int):
    """Two independent sigmoids as 'probabilities': they do not sum to 1."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [n_features, 2], np.linspace(-1e-3, 1e-3, n_features * 2))
    nodes = [
        helper.make_node("MatMul", ["input", "w"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probabilities"]),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "unnormalised",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        initializer=[weights],
    )
    return save_model(graph, path)


def test_onnx_is_preferred_and_passes_the_smoke_test(detector_files):
    predictor = load_predictor("detection", detector_files, DETECTION_METADATA)
    assert isinstance(predictor, OnnxDetector)
    result = smoke_test(predictor, DETECTION_METADATA)
    assert isinstance(result, SmokeResult)
    assert result.ok, result.detail
    assert result.latency_ms > 0 and "boxes" in result.detail


def test_weights_only_version_uses_the_torch_fallback(detector_files):
    predictor = load_predictor("detection", {"weights": detector_files["weights"]}, DETECTION_METADATA)
    assert isinstance(predictor, TorchDetector)
    assert predictor.class_names == NAMES and predictor.imgsz == 320
    assert smoke_test(predictor, DETECTION_METADATA).ok


def test_tabular_versions(tabular_files, tmp_path):
    metadata = tabular_metadata(tabular_files)
    both = {"onnx": tabular_files.onnx, "xgboost": tabular_files.json}
    onnx_scorer = load_predictor("tabular", both, metadata)
    assert isinstance(onnx_scorer, TabularScorer)
    result = smoke_test(onnx_scorer, metadata)
    assert result.ok, result.detail

    schema_file = tmp_path / "feature_schema.json"
    schema_file.write_text(json.dumps(tabular_files.schema))
    fallback = load_predictor(
        "tabular", {"xgboost": tabular_files.json, "feature_schema": schema_file}, {"class_names": CLASS_NAMES}
    )
    assert isinstance(fallback, XGBoostScorer)
    assert fallback.feature_names == onnx_scorer.feature_names
    assert smoke_test(fallback, metadata).ok


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_onnx_is_a_load_error_even_with_weights_present(detector_files, tmp_path, damage):
    good = detector_files["onnx"].read_bytes()
    broken = tmp_path / "broken.onnx"
    contents = {"garbage": b"this is not an onnx graph" * 100, "truncated": good[: len(good) // 2], "empty": b""}
    broken.write_bytes(contents[damage])
    with pytest.raises(MlopsError) as raised:
        load_predictor("detection", {"onnx": broken, "weights": detector_files["weights"]}, DETECTION_METADATA)
    assert raised.value.code == "model_load_failed"
    assert "broken.onnx" in raised.value.message


def test_model_that_answers_nan_fails_the_smoke_test(tmp_path):
    predictor = load_predictor("detection", {"onnx": nan_detector(tmp_path / "nan.onnx")}, {})
    result = smoke_test(predictor, {})
    assert not result.ok and "NaN" in result.detail
    with pytest.raises(SmokeTestFailed) as raised:
        load_checked_predictor("detection", {"onnx": tmp_path / "nan.onnx"}, {})
    assert "NaN" in raised.value.message


def test_probabilities_that_do_not_sum_to_one_fail_the_smoke_test(tabular_files, tmp_path):
    metadata = tabular_metadata(tabular_files)
    path = unnormalised_scorer(tmp_path / "bad.onnx", len(tabular_files.schema))
    result = smoke_test(load_predictor("tabular", {"onnx": path}, metadata), metadata)
    assert not result.ok and "sum to" in result.detail


def test_class_names_must_match_the_version(detector_files):
    with pytest.raises(MlopsError) as raised:
        load_predictor("detection", detector_files, {"class_names": ["person", "car"]})
    assert raised.value.code == "model_invalid"
    predictor = load_predictor("detection", detector_files, {})
    result = smoke_test(predictor, {"class_names": ["person", "car", "truck"]})
    assert not result.ok and "class names" in result.detail


def test_smoke_test_reports_instead_of_raising():
    class Exploding:
        kind = "detection"
        class_names = ["a"]

        def predict(self, *args, **kwargs):
            raise RuntimeError("kaboom")

    result = smoke_test(Exploding())
    assert not result.ok and "kaboom" in result.detail


def test_missing_files_and_unknown_kinds(tabular_files):
    for kind, files, metadata in [
        ("detection", {}, DETECTION_METADATA),
        ("tabular", {"onnx": tabular_files.onnx}, {"class_names": CLASS_NAMES}),
        ("tabular", {"onnx": tabular_files.onnx}, {"feature_schema": tabular_files.schema}),
        ("segmentation", {"onnx": tabular_files.onnx}, {}),
    ]:
        with pytest.raises(MlopsError) as raised:
            load_predictor(kind, files, metadata)
        assert raised.value.code == "model_load_failed"


def test_sample_image_is_fixed():
    assert np.array_equal(sample_image(), sample_image())
    assert sample_image().shape == (480, 640, 3)


SERVING_PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from mlops.inference import detector, features, images, loader, serving, tabular  # noqa: F401
from mlops.inference.images import decode_image
from mlops.inference.features import image_features
from mlops.inference.loader import load_predictor, smoke_test
from mlops.inference.serving import ModelServer

metadata = json.loads({metadata!r})
detector = load_predictor("detection", {{"onnx": {onnx!r}}}, metadata["detection"])
image = decode_image(open({image!r}, "rb").read(), max_pixels=40_000_000, max_side=12_000)
result = detector.predict(image, conf=0.05)
image_features(image)
scorer = load_predictor("tabular", {{"onnx": {tabular_onnx!r}}}, metadata["tabular"])
server = ModelServer(lambda name: 1, lambda name: ("1", scorer))
record = {{f.name: f.typical_value() for f in scorer.features}}
server.get("cancer").predictor.predict([record])
assert smoke_test(detector, metadata["detection"]).ok and smoke_test(scorer, metadata["tabular"]).ok
heavy = ("torch", "torchvision", "ultralytics", "xgboost", "mlflow", "sklearn", "pandas", "scipy")
print(json.dumps({{"loaded": sorted(m for m in heavy if m in sys.modules), "boxes": len(result.boxes)}}))
"""


def test_serving_path_imports_no_training_framework(detector_files, tabular_files):
    """A web process runs detectors and scorers without torch, ultralytics, xgboost, mlflow or pandas."""
    metadata = {"detection": DETECTION_METADATA, "tabular": tabular_metadata(tabular_files)}
    probe = SERVING_PROBE.format(
        root=str(Path(__file__).resolve().parents[2]),
        metadata=json.dumps(metadata),
        onnx=str(detector_files["onnx"]),
        image=str(asset("bus.jpg")),
        tabular_onnx=str(tabular_files.onnx),
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["boxes"] > 0
    assert report["loaded"] == [], f"the serving path imported {report['loaded']}"


def test_classifier_onnx_is_preferred_and_passes_the_smoke_test(classifier_files):
    files = {"onnx": classifier_files.onnx, "weights": classifier_files.pt}
    assert serving_roles("classification", files, CLASSIFICATION_METADATA) == ["onnx"]
    predictor = load_predictor("classification", files, CLASSIFICATION_METADATA)
    assert isinstance(predictor, OnnxClassifier) and predictor.imgsz == 96
    result = smoke_test(predictor, CLASSIFICATION_METADATA)
    assert result.ok, result.detail
    assert result.latency_ms > 0 and "top-1" in result.detail


def test_weights_only_classifier_uses_the_torch_fallback(classifier_files):
    files = {"weights": classifier_files.pt}
    assert serving_roles("classification", files, CLASSIFICATION_METADATA) == ["weights"]
    assert serving_roles("classification", {"reference": classifier_files.pt}, CLASSIFICATION_METADATA) == []
    predictor = load_predictor("classification", files, CLASSIFICATION_METADATA)
    assert isinstance(predictor, TorchClassifier)
    assert predictor.class_names == CLASSIFIER_NAMES and predictor.imgsz == 96
    result = smoke_test(predictor, CLASSIFICATION_METADATA)
    assert result.ok, result.detail


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_classifier_onnx_is_a_load_error_even_with_weights_present(classifier_files, tmp_path, damage):
    good = classifier_files.onnx.read_bytes()
    broken = tmp_path / "broken.onnx"
    contents = {"garbage": b"this is not an onnx graph" * 100, "truncated": good[: len(good) // 2], "empty": b""}
    broken.write_bytes(contents[damage])
    files = {"onnx": broken, "weights": classifier_files.pt}
    with pytest.raises(MlopsError) as raised:
        load_predictor("classification", files, CLASSIFICATION_METADATA)
    assert raised.value.code == "model_load_failed"
    assert "broken.onnx" in raised.value.message


def test_a_detector_is_not_a_classifier(detector_files, classifier_files):
    with pytest.raises(MlopsError) as raised:
        load_predictor("classification", {"onnx": detector_files["onnx"]}, {})
    assert raised.value.code == "model_invalid"
    with pytest.raises(MlopsError) as raised:
        load_predictor("detection", {"onnx": classifier_files.onnx}, {})
    assert raised.value.code == "model_invalid"
    with pytest.raises(MlopsError) as raised:
        load_predictor("classification", {"weights": detector_files["weights"]}, {})
    assert raised.value.code == "model_invalid"


@pytest.mark.parametrize(
    ("offset", "nan", "problem"), [(0.0, False, "negative"), (10.0, False, "sum to"), (0.0, True, "NaN")]
)
def test_classifier_that_outputs_no_probabilities_fails_the_smoke_test(tmp_path, offset, nan, problem):
    """A graph whose metadata promises the Classify head's softmax but which outputs raw scores."""
    path = scores_graph(tmp_path / "raw.onnx", metadata=claimed_probabilities_metadata(), offset=offset, nan=nan)
    metadata = {"class_names": CLASSIFIER_NAMES}
    predictor = load_predictor("classification", {"onnx": path}, metadata)
    assert predictor.outputs_probabilities is True
    result = smoke_test(predictor, metadata)
    assert not result.ok and problem in result.detail, result.detail
    with pytest.raises(SmokeTestFailed):
        load_checked_predictor("classification", {"onnx": path}, metadata)


def test_classifier_outputting_logits_gets_a_softmax_and_passes(tmp_path):
    path = scores_graph(tmp_path / "logits.onnx", offset=10.0)  # no Ultralytics metadata: logits
    metadata = {"class_names": CLASSIFIER_NAMES, "imgsz": 64}
    result = smoke_test(load_predictor("classification", {"onnx": path}, metadata), metadata)
    assert result.ok, result.detail


def test_classifier_class_names_must_match_the_version(classifier_files):
    for names in (["person", "car"], ["person", "car", "truck"]):
        with pytest.raises(MlopsError) as raised:
            load_predictor("classification", {"onnx": classifier_files.onnx}, {"class_names": names})
        assert raised.value.code == "model_invalid"
    predictor = load_predictor("classification", {"onnx": classifier_files.onnx}, {})
    result = smoke_test(predictor, {"class_names": ["person", "car", "truck"]})
    assert not result.ok and "class names" in result.detail
    result = smoke_test(predictor, {"class_names": [*CLASSIFIER_NAMES, "fish"]})
    assert not result.ok


def test_classifier_without_files_is_a_load_error():
    with pytest.raises(MlopsError) as raised:
        load_predictor("classification", {}, CLASSIFICATION_METADATA)
    assert raised.value.code == "model_load_failed"
