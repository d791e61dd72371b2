"""OnnxDetector against Ultralytics' own predict, on real YOLO11 and YOLO26 graphs and real images.

The models are built from the Ultralytics yaml files (no download), with batch-norm statistics taken
from two real images so the untrained network gives varied boxes and confidences, and a class bias
that puts a few dozen to a few hundred boxes above the test threshold.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlops.exceptions import InvalidInput, MlopsError
from mlops.inference.detector import OnnxDetector, TorchDetector, nms, resize_bilinear

IMGSZ = 320
CONF = 0.05
IOU = 0.7
NAMES = ["cat", "dog", "bird"]
VARIANTS = ["yolo11n", "yolo11n-dynamic", "yolo26n", "yolo26n-e2e"]
IMAGES = ["bus.jpg", "zidane.jpg"]
ROOT = Path(__file__).resolve().parents[2]


def asset(name: str) -> Path:
    """An image shipped inside the Ultralytics package (found without importing it)."""
    spec = importlib.util.find_spec("ultralytics")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / name


@dataclass(frozen=True)
class YoloFiles:
    pt: Path
    onnx: Path
    end2end: bool
    dynamic: bool = False


def ultralytics_env() -> None:
    from mlops.config import MlopsConfig

    MlopsConfig.from_env(ROOT).apply_process_env()


def build_yolo(arch: str, directory: Path, *, imgsz: int = IMGSZ, class_bias: float = -4.5) -> Path:
    """A deterministic untrained YOLO with len(NAMES) classes, saved as an Ultralytics .pt file."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = YOLO(f"{arch}.yaml")
    model.model = DetectionModel({**model.model.yaml, "nc": len(NAMES)}, verbose=False)
    calibration = [np.asarray(Image.open(asset(name)).convert("RGB").resize((imgsz, imgsz))) for name in IMAGES]
    batch = np.stack(calibration + [image[:, ::-1] for image in calibration])
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 255
    for module in model.model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0  # one pass sets the running statistics to this batch's
    model.model.train()
    with torch.no_grad():
        model.model(tensor)
        head = model.model.model[-1]
        for branch_name in ("cv3", "one2one_cv3"):
            for branch in getattr(head, branch_name, None) or []:
                branch[-1].bias.fill_(class_bias)
    model.model.eval()
    model.model.names = dict(enumerate(NAMES))
    model.model.args = dict(model.overrides)
    model.model.task = "detect"
    pt = directory / f"{arch}.pt"
    model.save(pt)
    return pt


def export_onnx(pt: Path, out: Path, *, imgsz: int = IMGSZ, end2end: bool = False, dynamic: bool = False) -> Path:
    from ultralytics import YOLO

    nms = False if end2end else None
    exported = YOLO(str(pt)).export(format="onnx", imgsz=imgsz, nms=nms, dynamic=dynamic, verbose=False)
    return Path(shutil.move(exported, out))


@pytest.fixture(scope="module")
def yolo_models(tmp_path_factory) -> dict[str, YoloFiles]:
    ultralytics_env()
    directory = tmp_path_factory.mktemp("yolo")
    out = directory / "onnx"
    out.mkdir()
    v11 = build_yolo("yolo11n", directory)
    v26 = build_yolo("yolo26n", directory)
    return {
        "yolo11n": YoloFiles(v11, export_onnx(v11, out / "yolo11n.onnx"), False),
        "yolo11n-dynamic": YoloFiles(v11, export_onnx(v11, out / "yolo11n-dynamic.onnx", dynamic=True), False, True),
        "yolo26n": YoloFiles(v26, export_onnx(v26, out / "yolo26n.onnx"), False),
        "yolo26n-e2e": YoloFiles(v26, export_onnx(v26, out / "yolo26n-e2e.onnx", end2end=True), True),
    }


@pytest.fixture(scope="module")
def detectors(yolo_models) -> dict[str, OnnxDetector]:
    return {variant: OnnxDetector(files.onnx) for variant, files in yolo_models.items()}


@pytest.fixture(scope="module")
def ultralytics_onnx(yolo_models) -> dict:
    """Ultralytics' own ONNX predictors for the same files (their AutoBackend on ONNX Runtime)."""
    from ultralytics import YOLO

    return {variant: YOLO(str(files.onnx), task="detect") for variant, files in yolo_models.items()}


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    return {name: Image.open(asset(name)).convert("RGB") for name in IMAGES}


def reference_rows(result) -> np.ndarray:
    """Ultralytics Results -> rows of x1, y1, x2, y2, conf, class."""
    return result.boxes.data.cpu().numpy().astype(np.float64)


def our_rows(result) -> np.ndarray:
    return np.array([[*box.xyxy, box.confidence, box.class_id] for box in result.boxes], dtype=np.float64).reshape(
        -1, 6
    )


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Untrained YOLO26 heads can emit inverted boxes (x1 > x2); compare them by the region they span.
    a = np.concatenate([np.minimum(a[:, :2], a[:, 2:4]), np.maximum(a[:, :2], a[:, 2:4])], axis=1)
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:4]), np.maximum(b[:, :2], b[:, 2:4])], axis=1)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:4] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:4] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def match_exactly(ours: np.ndarray, theirs: np.ndarray, *, pixels: float = 1.0, confidence: float = 1e-3) -> None:
    """One-to-one: every box has a partner of the same class within `pixels` and `confidence`."""
    assert len(ours) == len(theirs)
    free = np.ones(len(theirs), dtype=bool)
    for row in ours:
        distance = np.abs(theirs[:, :4] - row[:4]).max(axis=1)
        fits = free & (theirs[:, 5] == row[5]) & (np.abs(theirs[:, 4] - row[4]) <= confidence) & (distance <= pixels)
        assert fits.any(), f"no Ultralytics box matches {row}"
        chosen = np.flatnonzero(fits)[np.argmin(distance[fits])]
        free[chosen] = False


def matched_fraction(ours: np.ndarray, theirs: np.ndarray, min_iou: float = 0.9) -> float:
    """Share of boxes (of the larger set) with a same-class partner at IoU > min_iou.

    Boxes clipped flat against the image border have no area, hence no IoU: for those, corners
    within a pixel count as a match.
    """
    if not len(ours) or not len(theirs):
        return float(len(ours) == len(theirs))
    same_class = ours[:, None, 5] == theirs[None, :, 5]
    corners_agree = np.abs(ours[:, None, :4] - theirs[None, :, :4]).max(axis=2) <= 1.0
    overlap = np.where(corners_agree, 1.0, iou_matrix(ours, theirs)) * same_class
    matched = 0
    free = np.ones(len(theirs), dtype=bool)
    for row in np.argsort(-ours[:, 4]):
        candidates = np.where(free, overlap[row], 0)
        best = int(np.argmax(candidates))
        if candidates[best] > min_iou:
            free[best] = False
            matched += 1
    return matched / max(len(ours), len(theirs))


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_layouts(yolo_models, detectors, variant):
    files, detector = yolo_models[variant], detectors[variant]
    shape = detector.session.get_outputs()[0].shape
    if files.end2end:
        # YOLO26 exports its NMS-free head only with nms=False: (1, 300, 6) = x1, y1, x2, y2, conf, class.
        assert shape == [1, 300, 6] and detector.end2end is True
    elif files.dynamic:
        assert shape[1] == 4 + len(NAMES) and isinstance(shape[2], str) and detector.end2end is False
    else:
        n_anchors = sum((IMGSZ // stride) ** 2 for stride in (8, 16, 32))
        assert shape == [1, 4 + len(NAMES), n_anchors] and detector.end2end is False
    assert detector.dynamic is files.dynamic and detector.rect is files.dynamic
    assert detector.class_names == NAMES and detector.imgsz == IMGSZ and detector.stride == 32


@pytest.mark.parametrize("image_name", IMAGES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_ultralytics_onnx_predict(ultralytics_onnx, detectors, images, variant, image_name):
    image = images[image_name]
    ours = detectors[variant].predict(image, conf=CONF, iou=IOU)
    theirs = ultralytics_onnx[variant].predict(image, imgsz=IMGSZ, conf=CONF, iou=IOU, verbose=False)[0]
    assert (ours.width, ours.height) == image.size
    rows = our_rows(ours)
    assert len(rows) >= 1
    match_exactly(rows, reference_rows(theirs))
    assert [box.class_name for box in ours.boxes] == [NAMES[int(c)] for c in rows[:, 5]]


@pytest.mark.parametrize("variant", VARIANTS)
def test_close_to_pytorch_predict(yolo_models, detectors, images, variant):
    from ultralytics import YOLO

    files = yolo_models[variant]
    model = YOLO(str(files.pt), task="detect")
    total = 0
    for image in images.values():
        ours = our_rows(detectors[variant].predict(image, conf=CONF, iou=IOU))
        # A .pt predict letterboxes to the minimum rectangle (320x256 for bus.jpg) unless rect=False:
        # the same input as a dynamic ONNX graph, not as a fixed 320x320 one.
        theirs = model.predict(
            image,
            imgsz=IMGSZ,
            conf=CONF,
            iou=IOU,
            rect=files.dynamic,
            nms=False if files.end2end else None,
            verbose=False,
        )[0]
        theirs = reference_rows(theirs)
        assert abs(len(ours) - len(theirs)) <= max(2, len(theirs) // 50)
        assert matched_fraction(ours, theirs) >= 0.95
        total += len(ours)
    assert total >= 20, "the comparison needs boxes to mean anything"


def test_many_boxes_at_low_confidence(detectors, images):
    """At a low threshold NMS does real work: hundreds of candidates, overlapping kept boxes of different classes."""
    image = images["bus.jpg"]
    result = detectors["yolo11n"].predict(image, conf=0.01, iou=0.5, max_det=1000)
    rows = our_rows(result)
    assert len(rows) > 50
    # Clipping to the image changes overlaps; boxes clear of the border keep them (up to the x/y gain rounding).
    inside = rows[(rows[:, 0] > 0) & (rows[:, 1] > 0) & (rows[:, 2] < image.width) & (rows[:, 3] < image.height)]
    overlap = iou_matrix(inside, inside)
    np.fill_diagonal(overlap, 0)
    same_class = inside[:, None, 5] == inside[None, :, 5]
    assert overlap[same_class].max() <= 0.5 + 0.01
    limited = detectors["yolo11n"].predict(image, conf=0.01, iou=0.5, max_det=7)
    np.testing.assert_allclose(our_rows(limited), rows[:7])


def test_boxes_are_clipped_and_normalised(detectors, images):
    for detector in detectors.values():
        for image in images.values():
            result = detector.predict(image, conf=0.01)
            width, height = image.size
            for box in result.boxes:
                x1, y1, x2, y2 = box.xyxy
                assert min(x1, x2) >= 0 and max(x1, x2) <= width and min(y1, y2) >= 0 and max(y1, y2) <= height
                assert box.xyxyn == pytest.approx((x1 / width, y1 / height, x2 / width, y2 / height))
                assert set(box.to_dict()) == {"xyxy", "xyxyn", "class_id", "class_name", "confidence"}


@pytest.mark.parametrize("rect", [False, True], ids=["square", "rect"])
@pytest.mark.parametrize("size", [(810, 1080), (1000, 37), (3000, 1), (320, 320), (50, 100), (641, 479)])
def test_letterbox_is_bit_identical_to_ultralytics(detectors, size, rect):
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(sum(size))
    rgb = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    ours, _ = detectors["yolo11n-dynamic" if rect else "yolo11n"].preprocess(rgb)
    padded = LetterBox((IMGSZ, IMGSZ), auto=rect, stride=32)(image=np.ascontiguousarray(rgb[..., ::-1]))
    theirs = np.ascontiguousarray(padded[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / np.float32(255)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_rect_letterbox_runs_fewer_pixels(detectors, images):
    """bus.jpg (3:4) runs as 320x256 on a dynamic export instead of 320x320."""
    tensor, box = detectors["yolo11n-dynamic"].preprocess(np.asarray(images["bus.jpg"]))
    assert tensor.shape == (1, 3, 320, 256) and (box.pad_x, box.pad_y) == (8, 0)
    tensor, _ = detectors["yolo11n-dynamic"].preprocess(np.asarray(images["zidane.jpg"]))
    assert tensor.shape == (1, 3, 192, 320)


def random_boxes(rng, n: int, *, clustered: bool) -> np.ndarray:
    if clustered:  # heavy overlap: 30 objects with ~40 jittered candidates each, as a trained head gives
        centres = rng.uniform(50, 600, size=(30, 2))[rng.integers(0, 30, size=n)]
        corners = centres + rng.normal(0, 4, size=(n, 2))
        sizes = rng.uniform(40, 60, size=(n, 2))
    else:
        corners = rng.uniform(0, 300, size=(n, 2))
        sizes = rng.uniform(5, 80, size=(n, 2))
    boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
    boxes[:5, 2:] = boxes[:5, :2]  # zero-area boxes
    boxes[5:10, [0, 2]] = boxes[5:10, [2, 0]]  # inverted boxes, as untrained YOLO26 heads emit
    return boxes


@pytest.mark.parametrize("clustered", [False, True], ids=["spread", "clustered"])
def test_nms_matches_torchvision(clustered):
    import torch
    import torchvision

    rng = np.random.default_rng(7)
    n = 1200
    boxes = random_boxes(rng, n, clustered=clustered)
    scores = rng.uniform(0, 1, size=n).astype(np.float32)
    classes = rng.integers(0, 3, size=n)
    shifted = boxes + (classes.astype(np.float32) * 7680)[:, None]
    for threshold in (0.3, 0.5, 0.7):
        expected = torchvision.ops.nms(torch.from_numpy(shifted), torch.from_numpy(scores), threshold).numpy()
        assert np.array_equal(nms(shifted, scores, threshold), expected)
        assert np.array_equal(nms(shifted, scores, threshold, max_keep=10), expected[:10])
        assert np.array_equal(nms(shifted, scores, threshold, max_keep=300), expected[:300])


@pytest.mark.parametrize("size", [(810, 1080), (1080, 810), (100, 37), (300, 300)])
def test_numpy_resize_fallback_is_within_one_level_of_cv2(size):
    import cv2

    rgb = np.asarray(Image.open(asset("bus.jpg")).convert("RGB"))
    expected = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    got = resize_bilinear(rgb, *size)
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_detector_works_without_cv2(yolo_models, detectors, tmp_path):
    """In a process where cv2 cannot be imported, the NumPy resize feeds the model within one grey level."""
    tensor_path = tmp_path / "tensor.npy"
    probe = f"""
import json, sys
sys.modules["cv2"] = None
sys.path.insert(0, {str(ROOT)!r})
import numpy as np
from PIL import Image
from mlops.inference.detector import OnnxDetector
detector = OnnxDetector({str(yolo_models["yolo11n"].onnx)!r})
image = Image.open({str(asset("bus.jpg"))!r}).convert("RGB")
np.save({str(tensor_path)!r}, detector.preprocess(np.asarray(image))[0])
print(len(detector.predict(image, conf={CONF}).boxes), "cv2" in sys.modules and sys.modules["cv2"] is not None)
"""
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert int(output[0]) > 0 and output[1] == "False"
    with_cv2, _ = detectors["yolo11n"].preprocess(np.asarray(Image.open(asset("bus.jpg")).convert("RGB")))
    assert np.abs(np.load(tensor_path) - with_cv2).max() <= 1 / 255 + 1e-6


def test_concurrent_predictions_are_independent(detectors, images):
    """Threads share the session but not the input buffer: results equal the sequential ones."""
    detector = detectors["yolo26n"]
    work = [images["bus.jpg"], images["zidane.jpg"]] * 6
    expected = [our_rows(detector.predict(image, conf=CONF)) for image in work[:2]]
    results: dict[int, np.ndarray] = {}

    def run(index: int) -> None:
        results[index] = our_rows(detector.predict(work[index], conf=CONF))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, rows in results.items():
        assert np.array_equal(rows, expected[index % 2])
    assert len(results) == len(work)


def test_array_input_equals_pillow_input(detectors, images):
    image = images["zidane.jpg"]
    from_pillow = detectors["yolo11n"].predict(image, conf=CONF)
    from_array = detectors["yolo11n"].predict(np.asarray(image), conf=CONF)
    assert from_pillow.boxes == from_array.boxes


def test_torch_fallback_has_the_same_interface(yolo_models, detectors, images):
    square = TorchDetector(yolo_models["yolo11n"].pt, imgsz=IMGSZ, rect=False)
    rectangle = TorchDetector(yolo_models["yolo11n"].pt, imgsz=IMGSZ)
    assert square.class_names == NAMES and rectangle.rect is True
    for image in images.values():
        for fallback, onnx in ((square, detectors["yolo11n"]), (rectangle, detectors["yolo11n-dynamic"])):
            ours = fallback.predict(image, conf=CONF, iou=IOU)
            reference = onnx.predict(image, conf=CONF, iou=IOU)
            assert (ours.width, ours.height) == (reference.width, reference.height)
            assert matched_fraction(our_rows(ours), our_rows(reference)) >= 0.95


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"conf": 1.5}, "conf"), ({"iou": -0.1}, "iou"), ({"max_det": 0}, "max_det"), ({"conf": "high"}, "conf")],
)
def test_bad_thresholds_are_invalid_input(detectors, images, kwargs, field):
    with pytest.raises(InvalidInput) as raised:
        detectors["yolo11n"].predict(images["bus.jpg"], **kwargs)
    assert raised.value.details["field"] == field


def test_wrong_class_names_and_garbage_files_are_refused(yolo_models, tmp_path):
    with pytest.raises(MlopsError) as raised:
        OnnxDetector(yolo_models["yolo11n"].onnx, class_names=["only", "two"])
    assert raised.value.code == "model_invalid"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a graph" * 100)
    with pytest.raises(MlopsError) as raised:
        OnnxDetector(garbage)
    assert raised.value.code == "model_load_failed"
    with pytest.raises(MlopsError) as raised:
        OnnxDetector(tmp_path / "missing.onnx")
    assert raised.value.code == "model_load_failed"
