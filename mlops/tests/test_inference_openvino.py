"""The image models on OpenVINO: the same ONNX files as on ONNX Runtime, the same answers.

OpenVINO computes in float32 as ONNX Runtime does, but with its own kernels, so boxes agree to a
fraction of a pixel rather than bit for bit: the detector's boxes are matched one to one against
ONNX Runtime's, the classifier's probabilities compared, and the metadata both read must be the same.
A graph OpenVINO cannot compile opens on ONNX Runtime instead.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from mlops.exceptions import MlopsError
from mlops.inference import runtime
from mlops.inference.classifier import OnnxClassifier
from mlops.inference.detector import OnnxDetector
from mlops.inference.runtime import (
    OpenVinoSession,
    custom_metadata,
    engine_of,
    open_session,
    resolve_engine,
    use_openvino_cache,
)
from mlops.tests.test_inference_large_photos import box_iou
from tests.support import synthetic_photo, ultralytics_asset


@pytest.fixture(scope="module")
def pair(trained_detector):
    files = trained_detector.files
    return {
        engine: OnnxDetector(files.onnx, class_names=files.class_names, engine=engine)
        for engine in ("onnxruntime", "openvino")
    }


def test_the_detector_runs_on_openvino_and_reads_the_same_metadata(pair):
    ours, reference = pair["openvino"], pair["onnxruntime"]
    assert isinstance(ours.session, OpenVinoSession)
    assert ours.describe()["runtime"] == "openvino" and reference.describe()["runtime"] == "onnxruntime"
    assert {k: v for k, v in ours.describe().items() if k != "runtime"} == {
        k: v for k, v in reference.describe().items() if k != "runtime"
    }
    assert custom_metadata(ours.session) == custom_metadata(reference.session)
    assert (ours.input_size, ours.dynamic, ours.stride, ours.end2end) == (
        reference.input_size, reference.dynamic, reference.stride, reference.end2end,
    )  # fmt: skip
    assert [(i.name, i.type) for i in ours.session.get_inputs()] == [
        (i.name, i.type) for i in reference.session.get_inputs()
    ]


def detection_rows(result) -> np.ndarray:
    return np.array([[*box.xyxy, box.confidence, box.class_id] for box in result.boxes]).reshape(-1, 6)


@pytest.mark.parametrize("conf", [0.05, 0.001])
def test_boxes_match_onnx_runtime_to_a_fraction_of_a_pixel(pair, trained_detector, conf):
    images = [Image.open(path).convert("RGB") for path in trained_detector.samples]
    images += [Image.open(ultralytics_asset("bus.jpg")).convert("RGB"), synthetic_photo(seed=3)]
    compared = 0
    for image in images:
        ours = detection_rows(pair["openvino"].predict(image, conf=conf))
        theirs = detection_rows(pair["onnxruntime"].predict(image, conf=conf))
        # A candidate within float rounding of `conf` may fall either side of it; every other box pairs up.
        assert abs(len(ours) - len(theirs)) <= max(1, len(theirs) // 50)
        if not len(theirs):
            continue
        iou = box_iou(ours[:, :4], theirs[:, :4]) * (ours[:, None, 5] == theirs[None, :, 5])
        best = iou.argmax(axis=1)
        paired = iou[np.arange(len(ours)), best] > 0.98
        assert paired.mean() >= 0.98, f"{(~paired).sum()} of {len(ours)} boxes without their twin"
        assert np.abs(ours[paired, :4] - theirs[best[paired], :4]).max() < 0.5  # pixels
        assert np.abs(ours[paired, 4] - theirs[best[paired], 4]).max() < 2e-3  # confidence
        compared += len(theirs)
    assert compared >= 10, "too few boxes to compare"


@pytest.fixture
def openvino_cache(monkeypatch):
    """Sets the process's compile cache for one test and puts the one the app set back afterwards."""
    monkeypatch.setattr(runtime, "_openvino_cache_dir", runtime._openvino_cache_dir)
    return use_openvino_cache


def test_a_compiled_model_is_imported_from_the_cache_on_the_next_load(openvino_cache, pair, trained_detector, tmp_path):
    openvino_cache(tmp_path / "compiled")
    files = trained_detector.files
    first = OnnxDetector(files.onnx, class_names=files.class_names, engine="openvino")
    blobs = list((tmp_path / "compiled").glob("*.blob"))
    assert len(blobs) == 1 and blobs[0].stat().st_size > 100_000
    again = OnnxDetector(files.onnx, class_names=files.class_names, engine="openvino")
    assert not first.session.compiled.get_property("LOADED_FROM_CACHE")
    assert again.session.compiled.get_property("LOADED_FROM_CACHE")
    assert list((tmp_path / "compiled").glob("*.blob")) == blobs
    uncached = pair["openvino"]
    for path in trained_detector.samples[:3]:
        image = Image.open(path).convert("RGB")
        expected = detection_rows(uncached.predict(image, conf=0.05))
        assert len(expected)
        np.testing.assert_allclose(detection_rows(again.predict(image, conf=0.05)), expected, atol=1e-4)


def test_an_unusable_cache_only_costs_the_cache(openvino_cache, trained_detector, tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    openvino_cache(blocker / "compiled")
    files = trained_detector.files
    with caplog.at_level(logging.WARNING, logger="mlops.inference.runtime"):
        detector = OnnxDetector(files.onnx, class_names=files.class_names, engine="openvino")
    assert "runtime.openvino_cache_unusable" in caplog.text
    assert detector.describe()["runtime"] == "openvino"
    assert detector.predict(Image.open(trained_detector.samples[0]).convert("RGB"), conf=0.05).boxes


def test_no_cache_compiles_at_every_load(openvino_cache, trained_detector):
    openvino_cache("")
    files = trained_detector.files
    for _ in range(2):
        detector = OnnxDetector(files.onnx, class_names=files.class_names, engine="openvino")
        assert not detector.session.compiled.get_property("LOADED_FROM_CACHE")


def test_the_classifier_gives_the_same_probabilities(classifier_model):
    ours, reference = (
        OnnxClassifier(classifier_model.onnx, class_names=classifier_model.class_names, engine=engine)
        for engine in ("openvino", "onnxruntime")
    )
    assert ours.describe()["runtime"] == "openvino"
    assert {k: v for k, v in ours.describe().items() if k != "runtime"} == {
        k: v for k, v in reference.describe().items() if k != "runtime"
    }
    for seed in range(4):
        image = synthetic_photo(seed=seed)
        a, b = ours.predict(image).probabilities, reference.predict(image).probabilities
        assert np.allclose(a, b, atol=1e-4), (a, b)


def test_concurrent_predictions_on_one_openvino_detector_are_independent(pair, trained_detector):
    detector = pair["openvino"]
    images = [Image.open(path).convert("RGB") for path in trained_detector.samples[:6]]
    expected = [detection_rows(detector.predict(image, conf=0.05)) for image in images]
    failures: list[str] = []

    def run(index: int) -> None:
        for _ in range(5):
            got = detection_rows(detector.predict(images[index], conf=0.05))
            if not np.array_equal(got, expected[index]):
                failures.append(f"image {index}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


@pytest.fixture(scope="module")
def tree_onnx(tmp_path_factory):
    """A graph of an ONNX-ML operator (what XGBoost converts to), which OpenVINO does not implement."""
    node = helper.make_node("Binarizer", ["x"], ["y"], domain="ai.onnx.ml", threshold=0.5)
    graph = helper.make_graph(
        [node],
        "ml",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    path = tmp_path_factory.mktemp("ml") / "binarizer.onnx"
    onnx.save(model, path)
    return path


def test_a_graph_openvino_cannot_compile_runs_on_onnx_runtime(tree_onnx, caplog):
    with caplog.at_level(logging.WARNING, logger="mlops.inference.runtime"):
        session = open_session(tree_onnx, engine="openvino")
    assert engine_of(session) == "onnxruntime"
    assert "runtime.openvino_fallback" in caplog.text
    out = session.run(None, {"x": np.array([[0.2, 0.7, 0.5]], np.float32)})[0]
    assert out.tolist() == [[0.0, 1.0, 0.0]]


def test_an_unknown_engine_is_refused(tree_onnx):
    with pytest.raises(MlopsError, match="Unknown inference engine 'tensorrt'"):
        open_session(tree_onnx, engine="tensorrt")


def test_no_openvino_thread_keeps_a_core_busy_between_runs(pair, trained_detector):
    detector = pair["openvino"]
    image = Image.open(trained_detector.samples[0]).convert("RGB")
    for _ in range(5):
        detector.predict(image)
    before = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - before < 0.01


def cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(
        f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    )
    return path


def test_auto_takes_openvino_only_where_the_cpu_has_avx512(tmp_path):
    assert (
        resolve_engine("auto", cpuinfo=cpuinfo(tmp_path, "fpu sse2 avx2 fma avx512f avx512bw avx512vl")) == "openvino"
    )
    (tmp_path / "avx2").mkdir()
    assert resolve_engine("auto", cpuinfo=cpuinfo(tmp_path / "avx2", "fpu sse2 avx2 fma avx512_vp2intersect_x")) == (
        "onnxruntime"
    )
    assert resolve_engine("auto", cpuinfo=tmp_path / "no-such-file") == "onnxruntime"
    assert resolve_engine("openvino", cpuinfo=tmp_path / "no-such-file") == "openvino"
    assert resolve_engine("onnxruntime", cpuinfo=cpuinfo(tmp_path, "avx512f")) == "onnxruntime"


def test_a_detector_opened_on_auto_runs_on_what_auto_stands_for_here(trained_detector):
    files = trained_detector.files
    detector = OnnxDetector(files.onnx, class_names=files.class_names, engine="auto")
    assert detector.describe()["runtime"] == resolve_engine("auto")
    assert detector.predict(Image.open(trained_detector.samples[0]).convert("RGB"), conf=0.05).boxes
