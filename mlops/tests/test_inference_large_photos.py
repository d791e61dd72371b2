"""A photo far larger than the model's input is decoded at a reduced JPEG scale (decode_image `fit`):
it must cost no accuracy. The shapes detector is scored (mAP50-95, Ultralytics' AP) on a test split
rendered as large JPEGs, decoded in full and at the reduced scale, and the boxes come back in the
photo's own pixels either way."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlops.data.synthetic import ShapesSpec, generate_shapes
from mlops.inference.detector import OnnxDetector
from mlops.inference.images import decode_image, source_size
from tests.models import DETECTION_CLASSES
from tests.support import TRAIN_IMGSZ

CAPS = {"max_pixels": 40_000_000, "max_side": 12_000}
PHOTO_SIDE = 2048  # 32x the detector's 64-px input: decoded at 1/8 scale, 256x256
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4 xyxy) against every box in b (M, 4)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def true_positives(pred_xyxy, pred_cls, true_xyxy, true_cls) -> np.ndarray:
    """(N, 10) matches at IoU 0.5:0.95, one prediction per object, best IoU first (Ultralytics' rule)."""
    correct = np.zeros((len(pred_cls), len(IOU_THRESHOLDS)), dtype=bool)
    if not len(pred_cls) or not len(true_cls):
        return correct
    iou = box_iou(true_xyxy, pred_xyxy) * (true_cls[:, None] == pred_cls[None, :])
    for index, threshold in enumerate(IOU_THRESHOLDS):
        pairs = np.argwhere(iou >= threshold)
        if not len(pairs):
            continue
        pairs = pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")]
        pairs = pairs[np.unique(pairs[:, 1], return_index=True)[1]]
        pairs = pairs[np.unique(pairs[:, 0], return_index=True)[1]]
        correct[pairs[:, 1], index] = True
    return correct


def labels(path: Path, side: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.loadtxt(path, ndmin=2).reshape(-1, 5)
    cx, cy, w, h = (rows[:, i] * side for i in range(1, 5))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), rows[:, 0].astype(int)


def map50_95(detector: OnnxDetector, photos: list[tuple[bytes, Path]], fit) -> float:
    from ultralytics.utils.metrics import ap_per_class

    stats = {"tp": [], "conf": [], "pred_cls": [], "target_cls": []}
    for data, label_path in photos:
        image = decode_image(data, **CAPS, fit=fit)
        assert source_size(image) == (PHOTO_SIDE, PHOTO_SIDE)
        result = detector.predict(image, conf=0.001, iou=0.7, max_det=300)
        assert (result.width, result.height) == (PHOTO_SIDE, PHOTO_SIDE)
        pred_xyxy = np.array([box.xyxy for box in result.boxes]).reshape(-1, 4)
        pred_cls = np.array([box.class_id for box in result.boxes], dtype=int)
        true_xyxy, true_cls = labels(label_path, PHOTO_SIDE)
        stats["tp"].append(true_positives(pred_xyxy, pred_cls, true_xyxy, true_cls))
        stats["conf"].append(np.array([box.confidence for box in result.boxes]))
        stats["pred_cls"].append(pred_cls)
        stats["target_cls"].append(true_cls)
    arrays = {key: np.concatenate(values) for key, values in stats.items()}
    ap = ap_per_class(arrays["tp"], arrays["conf"], arrays["pred_cls"], arrays["target_cls"], plot=False)[5]
    return float(ap.mean())


# What the tiny test detector must score on the split to show it finds the shapes at all.
MIN_MAP = 0.05


@pytest.fixture(scope="module")
def large_test_split(tmp_path_factory) -> list[tuple[bytes, Path]]:
    """The shapes detector's world (same spec, unseen seed) upscaled to PHOTO_SIDE and saved as JPEG."""
    spec = ShapesSpec(
        count=80, seed=2026, max_objects=1, classes=tuple(DETECTION_CLASSES), imgsz=TRAIN_IMGSZ,
        min_size=0.3, max_size=0.5,
    )  # fmt: skip
    split = generate_shapes(tmp_path_factory.mktemp("large-photos") / "test", spec)
    photos = []
    for image_path in sorted((split / "images").iterdir()):
        with Image.open(image_path) as small:
            large = small.convert("RGB").resize((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        large.save(buffer, format="JPEG", quality=90)
        photos.append((buffer.getvalue(), split / "labels" / f"{image_path.stem}.txt"))
    return photos


def test_reduced_scale_decoding_of_large_photos_costs_no_accuracy(trained_detector, large_test_split):
    detector = OnnxDetector(trained_detector.files.onnx, class_names=trained_detector.files.class_names)
    first = decode_image(large_test_split[0][0], **CAPS, fit=detector.input_size)
    assert first.size == (PHOTO_SIDE // 8, PHOTO_SIDE // 8)  # the reduced path is the one measured

    full = map50_95(detector, large_test_split, fit=None)
    reduced = map50_95(detector, large_test_split, fit=detector.input_size)
    # The tiny test detector scores 0.09-0.16 here, by the CPU it was trained on; boxes in the wrong pixels ~0.
    assert full > MIN_MAP, f"the detector should find the shapes on the full decode (mAP50-95 {full:.3f})"
    assert abs(full - reduced) <= 0.005, f"mAP50-95 {full:.4f} in full, {reduced:.4f} at reduced scale"


def test_boxes_on_a_reduced_decode_are_in_the_photos_pixels(trained_detector, large_test_split):
    detector = OnnxDetector(trained_detector.files.onnx, class_names=trained_detector.files.class_names)
    overlaps = []
    for data, _ in large_test_split[:20]:
        full = detector.predict(decode_image(data, **CAPS), conf=0.05)
        reduced = detector.predict(decode_image(data, **CAPS, fit=detector.input_size), conf=0.05)
        assert (reduced.width, reduced.height) == (full.width, full.height) == (PHOTO_SIDE, PHOTO_SIDE)
        for box in reduced.boxes:
            assert np.allclose(np.array(box.xyxy) / PHOTO_SIDE, box.xyxyn, atol=1e-6)
        if full.boxes and reduced.boxes:  # the most confident box of each, as the photo's pixels
            a, b = (np.array([result.boxes[0].xyxy]) for result in (full, reduced))
            overlaps.append(float(box_iou(a, b)[0, 0]))
    assert len(overlaps) >= 10, "too few photos with boxes to compare"
    assert np.median(overlaps) > 0.9, overlaps


def test_openvino_scores_what_onnx_runtime_scores(trained_detector, large_test_split):
    """The serving engine (runtime.open_session) costs no accuracy either: same split, same decode."""
    scores = {
        engine: map50_95(
            OnnxDetector(trained_detector.files.onnx, class_names=trained_detector.files.class_names, engine=engine),
            large_test_split,
            fit=(64, 64),
        )
        for engine in ("onnxruntime", "openvino")
    }
    assert scores["onnxruntime"] > MIN_MAP, scores
    assert abs(scores["onnxruntime"] - scores["openvino"]) <= 0.005, scores
