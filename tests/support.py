"""Test support shared by the serving tests and the browser test: real images, and a detector trained
on synthetic shapes (once per process)."""

from __future__ import annotations

import importlib.util
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.models import DETECTION_CLASSES, DetectorFiles

TINY_YAML = Path(__file__).with_name("tiny_detector.yaml")
TRAIN_IMGSZ = 64


def ultralytics_asset(name: str) -> Path:
    """bus.jpg / zidane.jpg shipped inside the installed Ultralytics package."""
    spec = importlib.util.find_spec("ultralytics")
    return Path(spec.origin).parent / "assets" / name


def image_bytes(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def synthetic_photo(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@dataclass(frozen=True)
class TrainedDetector:
    """A detector that finds the synthetic shapes, and held-out images of them (never trained on)."""

    files: DetectorFiles
    samples: tuple[Path, ...]


_trained: dict[str, TrainedDetector] = {}
_trained_lock = threading.Lock()


def train_tiny_detector(directory: Path) -> TrainedDetector:
    """Train the tiny YOLO on synthetic shapes at 64 px (a couple of minutes), export it to ONNX.

    Memoised per process: the detection tests and the browser test share one training.
    """
    with _trained_lock:
        if "detector" not in _trained:
            _trained["detector"] = _train(directory)
        return _trained["detector"]


def _train(directory: Path) -> TrainedDetector:
    # Ultralytics' environment (offline, no auto-install, settings under VAR_DIR) is set by the
    # project's settings, which pytest-django imported before any test ran.
    from ultralytics import YOLO

    from mlops.data.synthetic import ShapesSpec, generate_shapes

    shape = {"classes": tuple(DETECTION_CLASSES), "imgsz": TRAIN_IMGSZ, "min_size": 0.3, "max_size": 0.5}
    data_dir = generate_shapes(directory / "shapes", ShapesSpec(count=192, seed=0, max_objects=1, **shape))
    held_out = generate_shapes(directory / "held-out", ShapesSpec(count=6, seed=99, max_objects=2, **shape))
    data_yaml = directory / "shapes.yaml"
    data_yaml.write_text(f"path: {data_dir}\ntrain: images\nval: images\nnames: {list(DETECTION_CLASSES)}\n")
    model = YOLO(str(TINY_YAML))
    model.train(
        data=str(data_yaml), epochs=16, imgsz=TRAIN_IMGSZ, batch=16, workers=0, device="cpu", seed=0,
        project=str(directory / "runs"), name="tiny", exist_ok=True, plots=False, val=False, amp=False,
        verbose=False, optimizer="AdamW", lr0=0.008, warmup_epochs=0, mosaic=0.0, close_mosaic=0,
        hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.05, scale=0.1,
    )  # fmt: skip
    weights = directory / "tiny-detector.pt"
    (directory / "runs" / "tiny" / "weights" / "last.pt").replace(weights)
    exported = Path(YOLO(str(weights)).export(format="onnx", imgsz=TRAIN_IMGSZ, simplify=False, verbose=False))
    onnx = directory / "tiny-detector.onnx"
    exported.replace(onnx)
    files = DetectorFiles(weights=weights, onnx=onnx, class_names=list(DETECTION_CLASSES), imgsz=TRAIN_IMGSZ)
    return TrainedDetector(files=files, samples=tuple(sorted((held_out / "images").iterdir())))
