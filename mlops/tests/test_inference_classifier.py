"""OnnxClassifier against Ultralytics' own predict on the same ONNX file, on real and synthetic images.

Ultralytics reads files with cv2 (BGR) and turns a PIL image into BGR too; both sides here get the
pixels of one Pillow decode, ours as RGB and Ultralytics' as the BGR array it expects, so any
difference is the preprocessing's or the runtime's, not the JPEG decoder's.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from mlops.exceptions import InvalidInput, MlopsError
from mlops.inference import classifier as classifier_module
from mlops.inference.classifier import (
    MAX_EXACT_RESIZE_PIXELS,
    ClassificationResult,
    ClassScore,
    OnnxClassifier,
    TorchClassifier,
    crop_geometry,
    resized_crop,
    softmax,
)
from mlops.inference.detector import OnnxDetector
from mlops.inference.images import decode_image, to_rgb
from mlops.inference.loader import sample_image
from mlops.tests.classifier_support import (
    IMGSZ,
    NAMES,
    asset,
    claimed_probabilities_metadata,
    export_classifier,
    photo_jpeg,
    scores_graph,
)

PROBABILITY_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def classifier(classifier_files) -> OnnxClassifier:
    return OnnxClassifier(classifier_files.onnx)


@pytest.fixture(scope="module")
def ultralytics_onnx(classifier_files):
    """Ultralytics' own predictor for the same file (its AutoBackend on ONNX Runtime)."""
    from ultralytics import YOLO

    return YOLO(str(classifier_files.onnx), task="classify")


def _decoded_photo(width: int, height: int) -> Image.Image:
    """A generated camera JPEG, decoded as uploads are (decode_image)."""
    return decode_image(photo_jpeg(width, height), max_pixels=40_000_000, max_side=12_000)


def _images() -> dict[str, Image.Image]:
    bus = Image.open(asset("bus.jpg"))
    zidane = Image.open(asset("zidane.jpg"))
    return {
        "bus.jpg": bus.convert("RGB"),  # 810x1080, portrait
        "zidane.jpg": zidane.convert("RGB"),  # 1280x720, landscape
        "synthetic-wide": Image.fromarray(sample_image(150, 517)),
        "grayscale": zidane.convert("L").resize((333, 500)),
        "small": bus.convert("RGB").resize((45, 61)),  # upsampled
        "crop-only": Image.fromarray(sample_image(IMGSZ, 131)),  # shorter side already the input size
        "input-size": Image.fromarray(sample_image(IMGSZ, IMGSZ)),  # neither resized nor cropped
        # Camera-sized JPEGs (12 MP: a 31x reduction at 96 px), where an approximate resize would show.
        "jpeg-4000x3000": _decoded_photo(4000, 3000),  # both passes, horizontal first
        "jpeg-1000x3000": _decoded_photo(1000, 3000),  # tall: Pillow runs the vertical pass first
    }


IMAGES = _images()


def ultralytics_input(image: Image.Image) -> np.ndarray:
    """The BGR uint8 array Ultralytics' loaders make of this image (what cv2.imread would give for its pixels)."""
    return np.ascontiguousarray(np.asarray(to_rgb(image))[..., ::-1])


def ultralytics_probabilities(model, image: Image.Image, project) -> np.ndarray:
    result = model.predict(ultralytics_input(image), verbose=False, save=False, project=str(project))[0]
    return result.probs.data.cpu().numpy().astype(np.float64)


def test_graph_and_metadata(classifier):
    shape = classifier.session.get_outputs()[0].shape
    assert shape == [1, len(NAMES)]
    assert classifier.class_names == NAMES and classifier.imgsz == IMGSZ and classifier.input_size == (IMGSZ, IMGSZ)
    assert classifier.outputs_probabilities is True  # the Classify head exports its softmax
    assert classifier.describe() == {
        "runtime": "onnxruntime",
        "imgsz": IMGSZ,
        "class_names": NAMES,
        "outputs_probabilities": True,
    }


@pytest.mark.parametrize("name", list(IMAGES))
def test_matches_ultralytics_onnx_predict(classifier, ultralytics_onnx, classifier_files, name):
    image = IMAGES[name]
    ours = classifier.predict(image, top_k=len(NAMES))
    theirs = ultralytics_probabilities(ultralytics_onnx, image, classifier_files.project)
    assert (ours.width, ours.height) == image.size
    assert ours.top1.class_id == int(np.argmax(theirs))
    assert np.abs(np.asarray(ours.probabilities) - theirs).max() <= PROBABILITY_TOLERANCE
    assert [score.class_id for score in ours.classes] == np.argsort(-theirs, kind="stable").tolist()


def test_the_images_tell_classes_apart(classifier):
    """The parity test means something only if the model's answers depend on the image."""
    results = [classifier.predict(image) for image in IMAGES.values()]
    assert len({result.top1.class_id for result in results}) >= 2
    assert max(result.top1.probability for result in results) > 0.6


@pytest.mark.parametrize(
    "size",
    [
        (810, 1080), (1280, 720), (1000, 37), (37, 1000), (96, 96), (95, 97), (50, 100), (641, 479), (3, 500),
        (684, 2069), (2069, 684), (300, 1000), (4000, 3000), (3000, 4000),  # both pass orders, 12 MP
    ],
)  # fmt: skip
def test_preprocessing_is_bit_identical_to_ultralytics(classifier, ultralytics_onnx, classifier_files, size):
    rng = np.random.default_rng(sum(size))
    rgb = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    ultralytics_probabilities(ultralytics_onnx, IMAGES["bus.jpg"], classifier_files.project)  # sets the predictor up
    theirs = ultralytics_onnx.predictor.preprocess([np.ascontiguousarray(rgb[..., ::-1])]).numpy()
    ours = classifier.preprocess(rgb)
    assert ours.shape == theirs.shape == (1, 3, IMGSZ, IMGSZ)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, theirs)


def test_extreme_aspect_ratios(classifier, ultralytics_onnx, classifier_files):
    """Ultralytics resizes a 5000x4 image to 120000x96 before cropping, a 4x5000 one to 96x120000.

    We compute only the crop's columns of the wide one: bit-identical without the huge image. The tall
    one's vertical pass would still make every resized row: past MAX_EXACT_RESIZE_PIXELS we resize the
    crop alone, within one grey level.
    """
    ultralytics_probabilities(ultralytics_onnx, IMAGES["bus.jpg"], classifier_files.project)
    for (width, height), exact in (((5000, 4), True), ((4, 5000), False)):
        geometry = crop_geometry(width, height, IMGSZ, IMGSZ)
        assert geometry.resized_width * geometry.resized_height > MAX_EXACT_RESIZE_PIXELS
        rgb = np.random.default_rng(5).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        theirs = ultralytics_onnx.predictor.preprocess([np.ascontiguousarray(rgb[..., ::-1])]).numpy()
        ours = classifier.preprocess(rgb)
        assert np.array_equal(ours, theirs) if exact else np.abs(ours - theirs).max() <= 1 / 255 + 1e-6


def _random_sizes(count: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(11)
    return [(int(w), int(h)) for w, h in rng.integers(2, 1600, size=(count, 2))]


@pytest.mark.parametrize("input_size", [(96, 96), (224, 224), (64, 96)])
def test_resized_crop_equals_pillows_whole_resize(input_size):
    """Resizing only the crop's lines gives Pillow's whole resize, byte for byte, in both of its pass orders."""
    assert classifier_module._two_passes_match_pillow()
    rng = np.random.default_rng(input_size[1])
    orders = set()
    for width, height in [(810, 1080), (1080, 810), (700, 2100), (2100, 700), (97, 96), *_random_sizes(60)]:
        image = Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))
        geometry = crop_geometry(width, height, *input_size)
        size = (geometry.resized_width, geometry.resized_height)
        if size[0] * size[1] > MAX_EXACT_RESIZE_PIXELS:
            continue
        box = (geometry.left, geometry.top, geometry.left + geometry.width, geometry.top + geometry.height)
        expected = image.resize(size, Image.BILINEAR).crop(box)
        assert resized_crop(image, geometry).tobytes() == expected.tobytes(), (width, height)
        orders.add(classifier_module._pillow_vertical_first(width, height, *size))
    assert orders == {True, False} or input_size == (64, 96)


def test_another_pillow_pass_order_falls_back_to_the_whole_resize(classifier, monkeypatch):
    """Were Pillow's pass order to change, the check fails and the whole image is resized, still exact."""
    expected = classifier.preprocess(IMAGES["bus.jpg"]).copy()
    monkeypatch.setattr(classifier_module, "_two_passes_match_pillow", lambda: False)
    calls = []
    original = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, *a, **k: calls.append(a[0]) or original(self, *a, **k))
    assert np.array_equal(classifier.preprocess(IMAGES["bus.jpg"]), expected)
    assert calls == [(IMGSZ, 128)]  # the whole 96x128 resize, in one call


def test_crop_geometry_follows_torchvision():
    # The longer side is truncated (int), the crop offset rounded half to even.
    geometry = crop_geometry(810, 1080, 96, 96)
    assert (geometry.resized_width, geometry.resized_height) == (96, 128)
    assert (geometry.left, geometry.top) == (0, 16)
    odd = crop_geometry(100, 37, 96, 96)  # 259x96: offset round(81.5) = 82 under half-to-even
    assert (odd.resized_width, odd.left) == (259, 82)
    rectangle = crop_geometry(810, 1080, 64, 96)  # a non-square input: exact resize, no crop
    assert (rectangle.resized_width, rectangle.resized_height, rectangle.left, rectangle.top) == (96, 64, 0, 0)


def test_dynamic_export_uses_the_given_size(classifier_files, tmp_path):
    from ultralytics import YOLO

    dynamic = export_classifier(classifier_files.pt, tmp_path / "dynamic.onnx", dynamic=True)
    ours = OnnxClassifier(dynamic, imgsz=64)
    assert ours.input_size == (64, 64)
    reference = YOLO(str(dynamic), task="classify")
    for image in (IMAGES["bus.jpg"], IMAGES["zidane.jpg"]):
        result = reference.predict(ultralytics_input(image), imgsz=64, verbose=False, project=str(tmp_path))[0]
        theirs = result.probs.data.cpu().numpy()
        assert np.abs(np.asarray(ours.predict(image).probabilities) - theirs).max() <= PROBABILITY_TOLERANCE


def test_result_shape_and_top_k(classifier):
    result = classifier.predict(IMAGES["bus.jpg"])
    assert isinstance(result, ClassificationResult) and all(isinstance(s, ClassScore) for s in result.classes)
    assert len(result.classes) == len(NAMES)  # the default is min(5, number of classes)
    assert len(result.probabilities) == len(NAMES)
    assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-5)
    probabilities = [score.probability for score in result.classes]
    assert probabilities == sorted(probabilities, reverse=True)
    assert result.top1 == result.classes[0]
    assert result.top1.class_name == NAMES[result.top1.class_id]
    assert result.top1.probability == result.probabilities[result.top1.class_id]
    assert result.inference_ms >= result.run_ms > 0
    one = classifier.predict(IMAGES["bus.jpg"], top_k=1)
    assert one.classes == [result.top1] and one.probabilities == result.probabilities
    as_dict = result.to_dict()
    assert set(as_dict) == {"classes", "probabilities", "image", "inference_ms"}
    assert as_dict["image"] == {"width": 810, "height": 1080}
    assert as_dict["classes"][0] == {
        "class_id": result.top1.class_id,
        "class_name": result.top1.class_name,
        "probability": round(result.top1.probability, 6),
    }


@pytest.mark.parametrize("top_k", [0, 4, -1, True, 2.5, 3.0, "3"])
def test_top_k_out_of_range_is_invalid_input(classifier, top_k):
    with pytest.raises(InvalidInput) as raised:
        classifier.predict(IMAGES["bus.jpg"], top_k=top_k)
    assert raised.value.code == "invalid_parameter"
    assert raised.value.details["field"] == "top_k" and raised.value.details["max"] == len(NAMES)


def test_array_input_equals_pillow_input(classifier):
    image = IMAGES["zidane.jpg"]
    from_pillow = classifier.predict(image)
    from_array = classifier.predict(np.asarray(image))
    assert from_pillow.probabilities == from_array.probabilities
    with pytest.raises(InvalidInput):
        classifier.predict(np.zeros((10, 10), dtype=np.uint8))


def test_concurrent_predictions_are_independent(classifier):
    """Threads share the session but not the input buffer: results equal the sequential ones."""
    work = [IMAGES["bus.jpg"], IMAGES["zidane.jpg"], IMAGES["synthetic-wide"]] * 4
    expected = [classifier.predict(image).probabilities for image in work[:3]]
    results: dict[int, list[float]] = {}

    def run(index: int) -> None:
        results[index] = classifier.predict(work[index]).probabilities

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(work)
    for index, probabilities in results.items():
        assert probabilities == expected[index % 3]


def test_a_graph_that_outputs_logits_gets_a_softmax(tmp_path):
    """Without Ultralytics' Classify metadata the output is taken as logits, as a torchvision head gives."""
    path = scores_graph(tmp_path / "logits.onnx")
    model = OnnxClassifier(path, class_names=NAMES, imgsz=64)
    assert model.outputs_probabilities is False
    image = IMAGES["bus.jpg"]
    raw = model.session.run(model.output_names, {model.input_name: model.preprocess(image)})[0][0]
    result = model.predict(image)
    np.testing.assert_allclose(result.probabilities, softmax(raw), rtol=0, atol=1e-7)
    assert result.top1.class_id == int(np.argmax(raw))


def test_wrong_class_names_are_refused(classifier_files):
    for names in (["only", "two"], ["dog", "cat", "bird"], [*NAMES, "fish"]):
        with pytest.raises(MlopsError) as raised:
            OnnxClassifier(classifier_files.onnx, class_names=names)
        assert raised.value.code == "model_invalid"
    assert OnnxClassifier(classifier_files.onnx, class_names=NAMES).class_names == NAMES
    assert OnnxClassifier(classifier_files.onnx, class_names=dict(enumerate(NAMES))).class_names == NAMES


def test_garbage_missing_and_other_task_files_are_refused(classifier_files, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a graph" * 100)
    for path in (garbage, tmp_path / "missing.onnx"):
        with pytest.raises(MlopsError) as raised:
            OnnxClassifier(path)
        assert raised.value.code == "model_load_failed" and path.name in raised.value.message
    detector_like = scores_graph(
        tmp_path / "detector.onnx", metadata={**claimed_probabilities_metadata(), "task": "detect"}
    )
    with pytest.raises(MlopsError) as raised:
        OnnxClassifier(detector_like)
    assert raised.value.code == "model_invalid" and "not a classifier" in raised.value.message
    with pytest.raises(MlopsError) as raised:
        OnnxDetector(classifier_files.onnx)
    assert raised.value.code == "model_invalid"
    # No names stored or given: the classes are numbered, as for detectors.
    assert OnnxClassifier(scores_graph(tmp_path / "anonymous.onnx")).class_names == ["0", "1", "2"]


def test_torch_fallback_has_the_same_interface(classifier_files, classifier):
    fallback = TorchClassifier(classifier_files.pt, imgsz=IMGSZ)
    assert fallback.class_names == NAMES and fallback.imgsz == IMGSZ
    assert fallback.describe()["runtime"] == "ultralytics"
    for name in ("bus.jpg", "zidane.jpg", "grayscale"):
        ours = fallback.predict(IMAGES[name], top_k=2)
        reference = classifier.predict(IMAGES[name], top_k=2)
        assert (ours.width, ours.height) == (reference.width, reference.height)
        assert ours.top1.class_id == reference.top1.class_id and len(ours.classes) == 2
        assert np.abs(np.asarray(ours.probabilities) - reference.probabilities).max() <= 1e-3
    with pytest.raises(MlopsError) as raised:
        TorchClassifier(classifier_files.pt, class_names=["a", "b"])
    assert raised.value.code == "model_invalid"
    with pytest.raises(InvalidInput):
        fallback.predict(IMAGES["bus.jpg"], top_k=0)
