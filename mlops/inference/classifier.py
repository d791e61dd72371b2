"""YOLO image classification on ONNX Runtime, matching Ultralytics' own predict without importing it.

Ultralytics 8.4 prepares a classify input with `classify_transforms(imgsz)` (ultralytics/data/
augment.py), split by `ClassificationPredictor.setup_source` into a host part and a device part:
torchvision's `Resize(size)` on a Pillow image (the shorter side to `size`, the longer to
`int(size * long / short)`, Pillow's antialiased BILINEAR), `CenterCrop(size)` (offsets
`int(round((side - size) / 2))`), then uint8 / 255 in float32 and `Normalize` with its default mean
0 and std 1 (an identity). `OnnxClassifier` does exactly that with Pillow and NumPy, so the model
sees bit-identical inputs. A graph whose input is not square gets torchvision's exact
`Resize((h, w))` and no crop, as `classify_transforms` does for a non-square size.

The Classify head applies softmax when exported (ultralytics/nn/modules/head.py: `y = x.softmax(1);
return y if self.export`), so an Ultralytics Classify export already outputs probabilities and is
used as is; a graph from another head (a torchvision backbone ending in Linear) or without
Ultralytics metadata outputs logits and gets a softmax here.

`TorchClassifier` is the fallback for versions without an ONNX file; it imports Ultralytics (and
torch) only when constructed.
"""

from __future__ import annotations

import logging
import numbers
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mlops.exceptions import InvalidInput, MlopsError
from mlops.inference.detector import _as_rgb_array, _class_names, load_ultralytics
from mlops.inference.images import to_rgb
from mlops.inference.runtime import custom_metadata, literal, open_session

logger = logging.getLogger(__name__)

DEFAULT_IMGSZ = 224  # Ultralytics' classification default
DEFAULT_TOP_K = 5  # Ultralytics' Probs.top5
# Ultralytics resizes the whole image before cropping. For an extreme aspect ratio that image is
# huge (a 12000x2 upload becomes 1344000x224: 300 Mpixels, 1.2 GB): past this many resized pixels
# (16 MB) we resize only the crop (Pillow's box), within one grey level of Ultralytics instead of
# bit-identical. Pillow computes the box's filter positions in a different order, hence the level.
MAX_EXACT_RESIZE_PIXELS = 4_000_000
# The heads whose ONNX export ends in softmax (the `head` metadata Ultralytics writes).
PROBABILITY_HEADS = frozenset({"Classify"})


@dataclass(frozen=True)
class ClassScore:
    """One class and its probability."""

    class_id: int
    class_name: str
    probability: float

    def to_dict(self) -> dict:
        return {"class_id": self.class_id, "class_name": self.class_name, "probability": round(self.probability, 6)}


@dataclass(frozen=True)
class ClassificationResult:
    """The top-k classes (best first), the whole probability vector in class order, the image size, the time spent."""

    classes: list[ClassScore]
    probabilities: list[float]
    width: int
    height: int
    inference_ms: float
    preprocess_ms: float = 0.0
    run_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def top1(self) -> ClassScore:
        return self.classes[0]

    def to_dict(self) -> dict:
        return {
            "classes": [score.to_dict() for score in self.classes],
            "probabilities": [round(p, 6) for p in self.probabilities],
            "image": {"width": self.width, "height": self.height},
            "inference_ms": round(self.inference_ms, 3),
        }


@dataclass(frozen=True)
class CentreCrop:
    """torchvision's Resize-then-CenterCrop as numbers: the resized size and where the crop starts in it."""

    resized_width: int
    resized_height: int
    left: int
    top: int
    width: int
    height: int


def crop_geometry(width: int, height: int, input_height: int, input_width: int) -> CentreCrop:
    """Where `classify_transforms((input_height, input_width))` resizes and crops a width x height image.

    A square size resizes the shorter side to it (torchvision `_compute_resized_output_size`: the
    longer side truncated, not rounded) and centre-crops (`int(round(...))`, Python's half-to-even);
    a non-square size resizes to exactly that size.
    """
    if input_height != input_width:
        return CentreCrop(input_width, input_height, 0, 0, input_width, input_height)
    size = input_height
    if width <= height:
        resized_width, resized_height = size, int(size * height / width)
    else:
        resized_width, resized_height = int(size * width / height), size
    left = round((resized_width - size) / 2.0)
    top = round((resized_height - size) / 2.0)
    return CentreCrop(resized_width, resized_height, left, top, size, size)


def check_top_k(top_k: Any, n_classes: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or not 1 <= int(top_k) <= n_classes:
        raise InvalidInput(
            f"top_k must be an integer between 1 and {n_classes} (the number of classes), got {top_k!r}.",
            code="invalid_parameter",
            details={"field": "top_k", "problem": "out_of_range", "max": n_classes},
        )
    return int(top_k)


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values.astype(np.float64) - values.max())
    return shifted / shifted.sum()


def _as_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        return Image.fromarray(_as_rgb_array(image))
    return to_rgb(image)


def _build_result(
    probabilities: np.ndarray, top_k: int, names: Sequence[str], width: int, height: int, started: float, **times
) -> ClassificationResult:
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    values = probabilities.tolist()
    classes = [ClassScore(index, names[index], values[index]) for index in order.tolist()]
    return ClassificationResult(
        classes=classes,
        probabilities=values,
        width=width,
        height=height,
        inference_ms=(time.perf_counter() - started) * 1000,
        **times,
    )


def _outputs_probabilities(meta: dict[str, str]) -> bool:
    """Whether the graph already ends in softmax, from the head Ultralytics records in the metadata.

    Exports older than the `head` key came from the Classify head, the only one Ultralytics' YOLO
    classification models had; a graph without Ultralytics metadata is taken to output logits.
    """
    head = meta.get("head")
    if head is not None:
        return head in PROBABILITY_HEADS
    return meta.get("task") == "classify" and meta.get("author", "").startswith("Ultralytics")


def _checked_names(given: Sequence[str] | dict | None, stored: Any, n_classes: int | None, path: Path) -> list[str]:
    names = _class_names(given, stored)
    if names is None:
        if n_classes is None:
            raise MlopsError(f"{path.name} stores no class names and none were given.", code="model_invalid")
        return [str(i) for i in range(n_classes)]
    stored_names = _class_names(None, stored)
    if stored_names is not None and stored_names != names:
        raise MlopsError(
            f"{path.name} was exported with the classes {stored_names}, not {names}.",
            code="model_invalid",
            details={"model_class_names": stored_names, "class_names": names},
        )
    if n_classes is not None and n_classes != len(names):
        raise MlopsError(
            f"The model predicts {n_classes} classes but {len(names)} class names were given.",
            code="model_invalid",
            details={"model_classes": n_classes, "class_names": len(names)},
        )
    return names


class OnnxClassifier:
    """A YOLO classification model exported to ONNX by Ultralytics, run on ONNX Runtime.

    Class names and input size come from the ONNX custom metadata Ultralytics writes unless given;
    given class names must equal the stored ones. Thread-safe: each thread keeps its own input
    buffer and ONNX Runtime sessions accept concurrent runs.
    """

    kind = "classification"

    def __init__(
        self,
        onnx_path: Path | str,
        *,
        class_names: Sequence[str] | dict | None = None,
        imgsz: int | Sequence[int] | None = None,
        intra_op_threads: int | None = None,
        spinning: bool = False,
    ):
        self.path = Path(onnx_path)
        self.session = open_session(self.path, intra_op_threads=intra_op_threads, spinning=spinning)
        meta = custom_metadata(self.session)
        task = meta.get("task", "classify")
        if task != "classify":
            raise MlopsError(
                f"{self.path.name} is a {task!r} model, not a classifier.", code="model_invalid", details={"task": task}
            )
        model_input, output = self.session.get_inputs()[0], self.session.get_outputs()[0]
        if len(model_input.shape) != 4 or len(output.shape) != 2:
            raise MlopsError(
                f"{self.path.name} maps {model_input.shape} to {output.shape}, not images to class scores.",
                code="model_invalid",
            )
        self.input_name = model_input.name
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        self.output_names = [output.name]
        self.input_size = self._input_size(model_input.shape, imgsz, literal(meta.get("imgsz")))
        height, width = self.input_size
        self.imgsz: int | tuple[int, int] = height if height == width else self.input_size
        n_classes = output.shape[1] if isinstance(output.shape[1], int) else None
        self.class_names = _checked_names(class_names, literal(meta.get("names")), n_classes, self.path)
        self.outputs_probabilities = _outputs_probabilities(meta)
        self._local = threading.local()

    def _input_size(self, shape: list, given: int | Sequence[int] | None, stored: Any) -> tuple[int, int]:
        wanted = given if given is not None else stored
        if isinstance(wanted, int):
            wanted = (wanted, wanted)
        if all(isinstance(d, int) and d > 0 for d in shape[2:]):
            size = (int(shape[2]), int(shape[3]))
            if wanted is not None and tuple(int(v) for v in wanted) != size:
                logger.warning("classifier.imgsz_ignored path=%s asked=%s input=%s", self.path.name, wanted, size)
            return size
        if wanted is None:
            return (DEFAULT_IMGSZ, DEFAULT_IMGSZ)
        height, width = (int(v) for v in wanted)
        if height < 1 or width < 1:
            raise MlopsError(f"imgsz {wanted} is not a size.", code="model_invalid")
        return (height, width)

    # -- inference ------------------------------------------------------------------------------

    def predict(self, image: Image.Image | np.ndarray, *, top_k: int | None = None) -> ClassificationResult:
        """Classify an RGB image (a Pillow image, or an HxWx3 uint8 RGB array).

        `top_k` is how many classes `classes` lists, 1 to the number of classes; None means
        min(5, number of classes), as Ultralytics' top5.
        """
        n_classes = len(self.class_names)
        top_k = min(DEFAULT_TOP_K, n_classes) if top_k is None else check_top_k(top_k, n_classes)
        started = time.perf_counter()
        rgb = _as_rgb_image(image)
        width, height = rgb.size
        tensor = self.preprocess(rgb)
        prepared = time.perf_counter()
        output = self.session.run(self.output_names, {self.input_name: tensor})[0]
        ran = time.perf_counter()
        probabilities = self.probabilities(output)
        return _build_result(
            probabilities,
            top_k,
            self.class_names,
            width,
            height,
            started,
            preprocess_ms=(prepared - started) * 1000,
            run_ms=(ran - prepared) * 1000,
            postprocess_ms=(time.perf_counter() - ran) * 1000,
        )

    def preprocess(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """Resize, centre-crop and scale an RGB image into this thread's (1, 3, H, W) input, as Ultralytics does."""
        rgb = _as_rgb_image(image)
        input_height, input_width = self.input_size
        crop = crop_geometry(rgb.width, rgb.height, input_height, input_width)
        box = (crop.left, crop.top, crop.left + crop.width, crop.top + crop.height)
        if (crop.resized_width, crop.resized_height) == rgb.size:
            pixels = np.asarray(rgb.crop(box) if rgb.size != (crop.width, crop.height) else rgb)
        elif crop.resized_width * crop.resized_height <= MAX_EXACT_RESIZE_PIXELS:
            pixels = np.asarray(rgb.resize((crop.resized_width, crop.resized_height), Image.BILINEAR).crop(box))
        else:
            scale_x, scale_y = rgb.width / crop.resized_width, rgb.height / crop.resized_height
            source = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
            logger.info("classifier.cropped_resize size=%sx%s", rgb.width, rgb.height)
            pixels = np.asarray(rgb.resize((crop.width, crop.height), Image.BILINEAR, box=source))
        tensor = self._buffer()
        # uint8 / 255 in float32, as Ultralytics divides; its Normalize(mean=0, std=1) changes nothing.
        np.divide(pixels.transpose(2, 0, 1), np.float32(255), out=tensor[0], casting="unsafe")
        if self.input_dtype is np.float16:
            return tensor.astype(np.float16)
        return tensor

    def _buffer(self) -> np.ndarray:
        tensor = getattr(self._local, "tensor", None)
        if tensor is None:
            tensor = self._local.tensor = np.empty((1, 3, *self.input_size), dtype=np.float32)
        return tensor

    def probabilities(self, output: np.ndarray) -> np.ndarray:
        """The class probabilities (float32) from the raw output: as is from a softmax head, softmax otherwise."""
        scores = np.asarray(output, dtype=np.float32)
        if scores.shape != (1, len(self.class_names)):
            raise MlopsError(
                f"Unexpected classifier output shape {scores.shape} for {len(self.class_names)} classes.",
                code="model_invalid",
            )
        if self.outputs_probabilities:
            return scores[0]
        return softmax(scores[0]).astype(np.float32)

    def describe(self) -> dict:
        return {
            "runtime": "onnxruntime",
            "imgsz": self.imgsz,
            "class_names": list(self.class_names),
            "outputs_probabilities": self.outputs_probabilities,
        }


class TorchClassifier:
    """Fallback for a version without an ONNX file: Ultralytics predict on the .pt weights, same interface.

    Imports Ultralytics (and torch) when constructed. A .pt file is a pickle: load only weights whose
    sha256 matched the registry.
    """

    kind = "classification"

    def __init__(
        self,
        weights: Path | str,
        *,
        class_names: Sequence[str] | dict | None = None,
        imgsz: int | Sequence[int] | None = None,
        intra_op_threads: int | None = None,
    ):
        self.path = Path(weights)
        self.model = load_ultralytics(self.path, "classify", intra_op_threads)
        if self.model.task != "classify":
            raise MlopsError(
                f"{self.path.name} is a {self.model.task!r} model, not a classifier.", code="model_invalid"
            )
        self.class_names = _checked_names(class_names, self.model.names, len(self.model.names), self.path)
        size = imgsz if imgsz is not None else DEFAULT_IMGSZ
        height, width = (int(size), int(size)) if isinstance(size, int) else (int(v) for v in size)
        self.input_size = (height, width)
        self.imgsz = height if height == width else self.input_size
        self._lock = threading.Lock()

    def predict(self, image: Image.Image | np.ndarray, *, top_k: int | None = None) -> ClassificationResult:
        n_classes = len(self.class_names)
        top_k = min(DEFAULT_TOP_K, n_classes) if top_k is None else check_top_k(top_k, n_classes)
        started = time.perf_counter()
        rgb = np.asarray(_as_rgb_image(image))
        height, width = rgb.shape[:2]
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        with self._lock:  # an Ultralytics predictor is not safe to share between threads
            result = self.model.predict(bgr, imgsz=list(self.input_size), verbose=False)[0]
        probabilities = result.probs.data.cpu().numpy().astype(np.float32)
        elapsed = (time.perf_counter() - started) * 1000
        return _build_result(probabilities, top_k, self.class_names, width, height, started, run_ms=elapsed)

    def describe(self) -> dict:
        return {"runtime": "ultralytics", "imgsz": self.imgsz, "class_names": list(self.class_names)}
