"""YOLO image classification on ONNX Runtime, matching Ultralytics' own predict without importing it.

Ultralytics 8.4 prepares a classify input with `classify_transforms(imgsz)` (ultralytics/data/
augment.py), split by `ClassificationPredictor.setup_source` into a host part and a device part:
torchvision's `Resize(size)` on a Pillow image (the shorter side to `size`, the longer to
`int(size * long / short)`, Pillow's antialiased BILINEAR), `CenterCrop(size)` (offsets
`int(round((side - size) / 2))`), then uint8 / 255 in float32 and `Normalize` with its default mean
0 and std 1 (an identity). `OnnxClassifier` does exactly that with Pillow and NumPy, so the model
sees bit-identical inputs. A graph whose input is not square gets torchvision's exact
`Resize((h, w))` and no crop, as `classify_transforms` does for a non-square size.

Pillow resizes in two separable passes and rounds to 8 bits in between; `resized_crop` runs the two
passes itself, in Pillow's order, on only the lines the crop needs, with Pillow's own coefficients
(each pass sees the whole image's geometry), so it stays bit-identical while skipping the source
rows or resized columns the crop throws away (measured: 6-14% less CPU for the resize of portrait,
tall and 12 MP photos, none for a 4:3 landscape one). Approximations were measured and refused: JPEG
draft decoding, `reduce()` (`reducing_gap`) and Pillow's `box` move the test classifiers'
probabilities by up to 4e-1, 4e-1 and 1.4e-4, past the parity tolerance of 1e-4 (bench/README.md).

The Classify head applies softmax when exported (ultralytics/nn/modules/head.py: `y = x.softmax(1);
return y if self.export`), so an Ultralytics Classify export already outputs probabilities and is
used as is; a graph from another head (a torchvision backbone ending in Linear) or without
Ultralytics metadata outputs logits and gets a softmax here.

`TorchClassifier` is the fallback for versions without an ONNX file; it imports Ultralytics (and
torch) only when constructed.
"""

from __future__ import annotations

import functools
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
from mlops.inference.runtime import ONNXRUNTIME, custom_metadata, engine_of, literal, open_session

logger = logging.getLogger(__name__)

DEFAULT_IMGSZ = 224  # Ultralytics' classification default
DEFAULT_TOP_K = 5  # Ultralytics' Probs.top5
# Ultralytics resizes the whole image before cropping. For an extreme aspect ratio that image is
# huge (a 12000x2 upload becomes 1344000x224: 300 Mpixels, 1.2 GB). `resized_crop` computes only the
# crop's lines, which keeps a wide image small, but a tall one's vertical pass still makes every
# resized row (2x12000 becomes 224x1344000): past this many pixels in one pass (16 MB) we resize
# only the crop (Pillow's box), within one grey level of Ultralytics instead of bit-identical.
# Pillow computes the box's filter positions in a different order, hence the level.
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


def _source_span(size: int, out: int, first: int, count: int) -> tuple[int, int]:
    """The source lines [start, stop) that Pillow's BILINEAR resize of `size` lines to `out` reads for
    output lines first..first+count-1, widened by a line each side (reading more changes nothing).

    Pillow's `precompute_coeffs` (libImaging/Resample.c): output line i is centred on (i + 0.5) * scale
    and reads the lines within `support` = max(scale, 1) of it, rounded.
    """
    scale = size / out
    support = max(scale, 1.0)
    start = int((first + 0.5) * scale - support + 0.5)
    stop = int((first + count - 0.5) * scale + support + 0.5)
    return max(start - 1, 0), min(stop + 1, size)


def _pillow_vertical_first(width: int, height: int, out_width: int, out_height: int) -> bool:
    """Pillow 13's pass order (libImaging/Resample.c, ImagingResampleInner): vertical first when the
    height shrinks by more than twice as many pixels as the width."""
    shrink = height - out_height
    return shrink > 0 and shrink > 2 * (width - out_width)


def _two_pass_crop(
    rgb: Image.Image, size: tuple[int, int], box: tuple[int, int, int, int], vertical_first: bool
) -> Image.Image | None:
    """`rgb.resize(size, BILINEAR).crop(box)`, bit-identical, computing only the lines the box needs;
    None when one of the passes would exceed MAX_EXACT_RESIZE_PIXELS.

    Each pass runs as a one-pass Pillow resize over the whole extent of the image it resizes (the
    lines outside the box's source span are left out of the first pass and come in as black, which
    only lines the box drops read), so Pillow computes the same coefficients as for the whole resize.
    """
    width, height = rgb.size
    out_width, out_height = size
    left, top, right, bottom = box
    if vertical_first:
        start, stop = _source_span(width, out_width, left, right - left)
        passes = ((stop - start) * out_height, width * (bottom - top), out_width * (bottom - top))
        if max(passes) > MAX_EXACT_RESIZE_PIXELS:
            return None
        band = rgb if (start, stop) == (0, width) else rgb.crop((start, 0, stop, height))
        rows = band.resize((stop - start, out_height), Image.BILINEAR).crop((-start, top, width - start, bottom))
        return rows.resize((out_width, bottom - top), Image.BILINEAR).crop((left, 0, right, bottom - top))
    start, stop = _source_span(height, out_height, top, bottom - top)
    passes = (out_width * (stop - start), (right - left) * height, (right - left) * out_height)
    if max(passes) > MAX_EXACT_RESIZE_PIXELS:
        return None
    band = rgb if (start, stop) == (0, height) else rgb.crop((0, start, width, stop))
    columns = band.resize((out_width, stop - start), Image.BILINEAR).crop((left, -start, right, height - start))
    return columns.resize((right - left, out_height), Image.BILINEAR).crop((0, top, right - left, bottom))


@functools.cache
def _two_passes_match_pillow() -> bool:
    """Whether `_two_pass_crop` reproduces this Pillow's resize (its pass order is Pillow 13's), checked
    once on two small images, one resized horizontally first and one vertically first."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(300, 96, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    for source, size, box in (((96, 300), (64, 200), (0, 68, 64, 132)), ((90, 120), (40, 53), (0, 6, 40, 46))):
        part = image.crop((0, 0, *source))
        vertical_first = _pillow_vertical_first(*source, *size)
        ours = _two_pass_crop(part, size, box, vertical_first)
        if ours is None or ours.tobytes() != part.resize(size, Image.BILINEAR).crop(box).tobytes():
            logger.warning("classifier.two_pass_resize_disabled pillow=%s", Image.__version__)
            return False
    return True


def resized_crop(rgb: Image.Image, crop: CentreCrop) -> Image.Image:
    """The crop of the resized image that `crop` describes, as Pillow computes it on the whole resize.

    Bit-identical to `rgb.resize(resized size, BILINEAR).crop(crop box)`, except past
    MAX_EXACT_RESIZE_PIXELS (within one grey level then).
    """
    size = (crop.resized_width, crop.resized_height)
    box = (crop.left, crop.top, crop.left + crop.width, crop.top + crop.height)
    if size == rgb.size:
        return rgb.crop(box) if size != (crop.width, crop.height) else rgb
    two_passes = size[0] != rgb.width and size[1] != rgb.height and (crop.width, crop.height) != size
    if two_passes and _two_passes_match_pillow():
        part = _two_pass_crop(rgb, size, box, _pillow_vertical_first(*rgb.size, *size))
        if part is not None:
            return part
    if size[0] * size[1] <= MAX_EXACT_RESIZE_PIXELS:
        return rgb.resize(size, Image.BILINEAR).crop(box)
    scale_x, scale_y = rgb.width / size[0], rgb.height / size[1]
    source = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
    logger.info("classifier.cropped_resize size=%sx%s", rgb.width, rgb.height)
    return rgb.resize((crop.width, crop.height), Image.BILINEAR, box=source)


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
    """A YOLO classification model exported to ONNX by Ultralytics, run on ONNX Runtime or OpenVINO (`engine`).

    Class names and input size come from the ONNX custom metadata Ultralytics writes unless given;
    given class names must equal the stored ones. Thread-safe: each thread keeps its own input
    buffer and both engines accept concurrent runs.
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
        engine: str = ONNXRUNTIME,
    ):
        self.path = Path(onnx_path)
        self.session = open_session(self.path, intra_op_threads=intra_op_threads, spinning=spinning, engine=engine)
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
        pixels = np.asarray(resized_crop(rgb, crop))
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
            "runtime": engine_of(self.session),
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
