"""A tiny YOLO classifier for the tests: built from yolo11n-cls.yaml (no download), exported by Ultralytics.

Untrained weights give near-uniform, image-independent probabilities, which would make a parity test
pass on anything. So the batch-norm statistics are taken from real images and the final linear
layer is scaled until the logits differ by a few units between images: different images then get
different top classes, with probabilities far from ties.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from mlops.config import library_env

NAMES = ["cat", "dog", "bird"]
IMGSZ = 96
CALIBRATION_IMAGES = ("bus.jpg", "zidane.jpg")
ULTRALYTICS_NAMES = "{0: 'cat', 1: 'dog', 2: 'bird'}"


def photo_jpeg(width: int, height: int, *, seed: int = 0, quality: int = 90) -> bytes:
    """A deterministic camera-sized JPEG: bus.jpg enlarged to width x height, with sensor-like noise and a
    fine diagonal pattern (the detail an antialiased resize has to average, which an enlarged photo lacks)."""
    base = np.asarray(Image.open(asset("bus.jpg")).convert("RGB").resize((width, height), Image.BICUBIC))
    rng = np.random.default_rng(seed)
    rows, columns = np.ogrid[:height, :width]
    pattern = (12 * np.sin(columns * 0.9 + rows * 0.4)).astype(np.int16)[..., None]
    noise = rng.normal(0, 6, base.shape).astype(np.int16)
    pixels = np.clip(base.astype(np.int16) + noise + pattern, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def asset(name: str) -> Path:
    """An image shipped inside the Ultralytics package (found without importing it)."""
    spec = importlib.util.find_spec("ultralytics")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / name


@dataclass(frozen=True)
class ClassifierFiles:
    pt: Path
    onnx: Path
    imgsz: int
    project: Path  # where Ultralytics' predict may write (it writes nothing with save=False)


@contextmanager
def ultralytics_env(directory: Path):
    """Ultralytics' settings under `directory` unless the session already chose a place, no downloads."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in library_env(directory / "var").items():
            if name.startswith("YOLO_") and not os.environ.get(name):
                patch.setenv(name, value)
        yield


def build_classifier(directory: Path, *, imgsz: int = IMGSZ, logit_spread: float = 3.0) -> Path:
    """A deterministic untrained yolo11n-cls with len(NAMES) classes, saved as an Ultralytics .pt file."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import ClassificationModel

    torch.manual_seed(0)
    model = YOLO("yolo11n-cls.yaml")
    model.model = ClassificationModel({**model.model.yaml, "nc": len(NAMES)}, verbose=False)
    images = [np.asarray(Image.open(asset(name)).convert("RGB").resize((imgsz, imgsz))) for name in CALIBRATION_IMAGES]
    batch = np.stack(images + [image[:, ::-1] for image in images] + [image[::-1] for image in images])
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 255
    for module in model.model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0  # one pass sets the running statistics to this batch's
    model.model.train()
    with torch.no_grad():
        model.model(tensor)
    model.model.eval()
    linear = model.model.model[-1].linear
    features = []
    hook = linear.register_forward_hook(lambda module, inputs, output: features.append(inputs[0]))
    with torch.no_grad():
        model.model(tensor)
        hook.remove()
        spread = linear(features[0]).std(dim=0).mean()
        linear.weight.mul_(logit_spread / spread)
        linear.bias.zero_()
    model.model.names = dict(enumerate(NAMES))
    model.model.args = dict(model.overrides)
    model.model.task = "classify"
    pt = directory / "classifier.pt"
    model.save(pt)
    return pt


def export_classifier(pt: Path, out: Path, *, imgsz: int = IMGSZ, dynamic: bool = False) -> Path:
    from ultralytics import YOLO

    out.parent.mkdir(parents=True, exist_ok=True)
    exported = YOLO(str(pt)).export(format="onnx", imgsz=imgsz, dynamic=dynamic, verbose=False)
    return Path(shutil.move(exported, out))


@pytest.fixture(scope="session")
def classifier_files(tmp_path_factory) -> ClassifierFiles:
    """The tiny classifier as .pt and as a fixed-size ONNX export, built once per test session."""
    directory = tmp_path_factory.mktemp("classifier")
    with ultralytics_env(directory):
        pt = build_classifier(directory)
        onnx_path = export_classifier(pt, directory / "onnx" / "classifier.onnx")
        yield ClassifierFiles(pt=pt, onnx=onnx_path, imgsz=IMGSZ, project=directory / "runs")


def scores_graph(
    path: Path, *, metadata: dict[str, str] | None = None, offset: float = 0.0, nan: bool = False, size: int = 64
) -> Path:
    """A hand-made classifier: mean colour -> 3x3 matrix (+ offset) -> raw scores, not probabilities (or NaN).

    Without an offset some scores are negative; a large offset makes them all positive, summing to far more than 1.
    """
    weights = np.array([[4.0, -2.0, 1.0], [-3.0, 5.0, 0.5], [1.0, 1.0, -6.0]], dtype=np.float32)
    bias = [float("nan")] * 3 if nan else [-1.0 + offset, 0.5 + offset, 0.25 + offset]
    initializers = [
        helper.make_tensor("w", TensorProto.FLOAT, [3, 3], weights.ravel().tolist()),
        helper.make_tensor("b", TensorProto.FLOAT, [3], bias),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["colour"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["colour", "w"], ["product"]),
        helper.make_node("Add", ["product", "b"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "scores",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def claimed_probabilities_metadata(size: int = 64) -> dict[str, str]:
    """The metadata of an Ultralytics Classify export: it promises softmax probabilities."""
    return {"task": "classify", "head": "Classify", "names": ULTRALYTICS_NAMES, "imgsz": f"[{size}, {size}]"}
