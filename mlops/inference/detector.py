"""YOLO detection on ONNX Runtime, matching Ultralytics' own predict without importing it.

`OnnxDetector` reproduces Ultralytics' fixed-size LetterBox (cv2 INTER_LINEAR resize, centred
padding of 114, the same rounding), runs the exported graph, and decodes either output layout:
the classic (1, 4+nc, N) head with class-aware NMS done in NumPy, or the end-to-end (1, K, 6) head
that needs none. `TorchDetector` is the fallback for versions without an ONNX file; it imports
Ultralytics (and torch) only when constructed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mlops.exceptions import InvalidInput, MlopsError
from mlops.inference.images import source_size, to_rgb
from mlops.inference.runtime import ONNXRUNTIME, custom_metadata, engine_of, literal, open_session

logger = logging.getLogger(__name__)

PAD_VALUE = 114  # Ultralytics' LetterBox padding grey
MAX_WH = 7680  # Ultralytics' per-class offset for class-aware NMS
MAX_NMS = 30000  # Ultralytics keeps at most this many candidates before NMS
MAX_DET = 1000  # our cap on boxes per image: keeps the worst-case NMS cost bounded
NMS_BLOCK = 256  # candidates compared at once in NMS
MAX_BUFFERS = 8  # input tensors kept per thread (one per letterboxed shape)


@dataclass(frozen=True)
class Box:
    """One detection in the original image's pixels (`xyxy`) and as fractions of its size (`xyxyn`)."""

    xyxy: tuple[float, float, float, float]
    xyxyn: tuple[float, float, float, float]
    class_id: int
    class_name: str
    confidence: float

    def to_dict(self) -> dict:
        return {
            "xyxy": [round(v, 2) for v in self.xyxy],
            "xyxyn": [round(v, 6) for v in self.xyxyn],
            "class_id": self.class_id,
            "class_name": self.class_name,
            "confidence": round(self.confidence, 6),
        }


@dataclass(frozen=True)
class DetectionResult:
    """The boxes for one image, its size, and where the time went (`inference_ms` is the whole predict)."""

    boxes: tuple[Box, ...]
    width: int
    height: int
    inference_ms: float
    preprocess_ms: float = 0.0
    run_ms: float = 0.0
    postprocess_ms: float = 0.0

    def to_dict(self) -> dict:
        return {
            "boxes": [box.to_dict() for box in self.boxes],
            "image": {"width": self.width, "height": self.height},
            "inference_ms": round(self.inference_ms, 3),
        }


@dataclass(frozen=True)
class Letterbox:
    """Where the resized image sits inside the model input, and how boxes map back to the image."""

    input_height: int
    input_width: int
    new_width: int
    new_height: int
    left: int
    top: int
    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int


def letterbox_geometry(
    width: int, height: int, input_height: int, input_width: int, *, rect: bool = False, stride: int = 32
) -> Letterbox:
    """Ultralytics' LetterBox arithmetic (scaleup, centred), and its scale_boxes inverse.

    `rect=False` pads to the full input size (a fixed-size ONNX graph); `rect=True` pads only up to
    the next multiple of the stride (`auto=True`), which Ultralytics uses for .pt and dynamic-shape
    ONNX models: a 4:3 photo then runs as 640x480 instead of 640x640.
    """
    ratio = min(input_height / height, input_width / width)
    new_width, new_height = max(round(width * ratio), 1), max(round(height * ratio), 1)
    pad_w, pad_h = input_width - new_width, input_height - new_height
    if rect:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    left, right = round(pad_w / 2 - 0.1), round(pad_w / 2 + 0.1)
    top, bottom = round(pad_h / 2 - 0.1), round(pad_h / 2 + 0.1)
    padded_height, padded_width = new_height + top + bottom, new_width + left + right
    # scale_boxes recomputes the mapping from the padded shape alone; mirror it for identical boxes.
    gain = min(padded_height / height, padded_width / width)
    mapped_height, mapped_width = max(round(height * gain), 1), max(round(width * gain), 1)
    return Letterbox(
        input_height=padded_height,
        input_width=padded_width,
        new_width=new_width,
        new_height=new_height,
        left=left,
        top=top,
        gain_x=mapped_width / width,
        gain_y=mapped_height / height,
        pad_x=round((padded_width - mapped_width) / 2 - 0.1),
        pad_y=round((padded_height - mapped_height) / 2 - 0.1),
    )


def _cv2_resizer():
    try:
        import cv2
    except ImportError:
        logger.warning("detector.cv2_missing fallback=numpy_bilinear (boxes may differ slightly from Ultralytics)")
        return resize_bilinear
    return lambda rgb, width, height: cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)


def resize_bilinear(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize with OpenCV's half-pixel geometry and no antialiasing (cv2 INTER_LINEAR within 1 level)."""
    y0, y1, wy = _axis(rgb.shape[0], height)
    x0, x1, wx = _axis(rgb.shape[1], width)
    top = rgb[y0].astype(np.float32)
    rows = top + (rgb[y1].astype(np.float32) - top) * wy[:, None, None]
    left = rows[:, x0]
    out = left + (rows[:, x1] - left) * wx[None, :, None]
    return np.rint(out).astype(np.uint8)


def _axis(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
    first = np.floor(centres)
    weight = (centres - first).astype(np.float32)
    weight[first < 0] = 0.0
    first = np.clip(first.astype(np.intp), 0, size_in - 1)
    return first, np.minimum(first + 1, size_in - 1), weight


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS giving torchvision's result: best first, drop boxes overlapping a kept one above the threshold.

    Boxes are taken in score order, a block at a time: a block is first checked against the boxes
    already kept, then its survivors are resolved among themselves. It stops once `max_keep` boxes
    are kept, so a low threshold with thousands of candidates costs a few blocks.
    """
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    limit = len(order) if max_keep is None else max_keep
    kept: list[int] = []
    for start in range(0, len(order), NMS_BLOCK):
        if len(kept) >= limit:
            break
        stop = min(start + NMS_BLOCK, len(order))
        alive = np.arange(start, stop)
        if kept:
            previous = np.asarray(kept)
            overlap = _iou(boxes[alive], areas[alive], boxes[previous], areas[previous]) > iou_threshold
            alive = alive[~overlap.any(axis=1)]
        if not alive.size:
            continue
        overlaps = _iou(boxes[alive], areas[alive], boxes[alive], areas[alive]) > iou_threshold
        suppressed = np.zeros(alive.size, dtype=bool)
        for position, index in enumerate(alive.tolist()):
            if suppressed[position]:
                continue
            kept.append(index)
            if len(kept) >= limit:
                break
            suppressed[position + 1 :] |= overlaps[position, position + 1 :]
    return order[np.asarray(kept, dtype=np.intp)]


def _iou(a: np.ndarray, a_areas: np.ndarray, b: np.ndarray, b_areas: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` with every box of `b`, in float32 like torchvision (NaN for degenerate pairs)."""
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(width, 0) * np.maximum(height, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (a_areas[:, None] + b_areas[None, :] - inter)


def check_thresholds(conf: float, iou: float, max_det: int) -> None:
    for name, value in (("conf", conf), ("iou", iou)):
        if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise InvalidInput(
                f"{name} must be a number between 0 and 1, got {value!r}.",
                code="invalid_parameter",
                details={"field": name, "problem": "out_of_range"},
            )
    if isinstance(max_det, bool) or not isinstance(max_det, int) or not 1 <= max_det <= MAX_DET:
        raise InvalidInput(
            f"max_det must be an integer between 1 and {MAX_DET}, got {max_det!r}.",
            code="invalid_parameter",
            details={"field": "max_det", "problem": "out_of_range"},
        )


def _class_names(given: Sequence[str] | dict | None, stored: Any) -> list[str] | None:
    names = given if given is not None else stored
    if names is None:
        return None
    if isinstance(names, dict):
        return [str(names[key]) for key in sorted(names, key=int)]
    return [str(name) for name in names]


def _as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InvalidInput(
                "Expected an RGB uint8 array of shape (height, width, 3).",
                code="invalid_image",
                details={"problem": "bad_array"},
            )
        return image
    return np.asarray(to_rgb(image))


def _source(image: Image.Image | np.ndarray) -> tuple[int, int] | None:
    """The upload's (width, height) when `image` was decoded from it at a reduced scale, else None."""
    if isinstance(image, Image.Image) and source_size(image) != image.size:
        return source_size(image)
    return None


def _scaled_to(xyxy: np.ndarray, width: int, height: int, source: tuple[int, int]) -> np.ndarray:
    """Boxes in a (width, height) image mapped onto the same picture at `source` size."""
    gain = np.array([source[0] / width, source[1] / height] * 2, dtype=np.float32)
    return (xyxy * gain).clip(0, np.array([source[0], source[1]] * 2, dtype=np.float32))


def _build_boxes(
    xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, width: int, height: int, names: list[str]
) -> tuple[Box, ...]:
    scale = np.array([width, height, width, height], dtype=np.float64)
    pixels = xyxy.astype(np.float64)
    fractions = pixels / scale
    out = []
    for row, row_n, score, class_id in zip(
        pixels.tolist(), fractions.tolist(), scores.tolist(), classes.tolist(), strict=True
    ):
        class_id = int(class_id)
        name = names[class_id] if 0 <= class_id < len(names) else str(class_id)
        out.append(Box(tuple(row), tuple(row_n), class_id, name, float(score)))
    return tuple(out)


class OnnxDetector:
    """A YOLO detection model exported to ONNX by Ultralytics, run on ONNX Runtime or OpenVINO (`engine`).

    Class names, input size, stride and the output layout come from the ONNX custom metadata that
    Ultralytics writes, unless given. Thread-safe: each thread keeps its own input buffer and
    both engines accept concurrent runs.
    """

    kind = "detection"

    def __init__(
        self,
        onnx_path: Path | str,
        class_names: Sequence[str] | dict | None = None,
        imgsz: int | Sequence[int] | None = None,
        intra_op_threads: int | None = None,
        *,
        rect: bool | None = None,
        spinning: bool = False,
        engine: str = ONNXRUNTIME,
    ):
        self.path = Path(onnx_path)
        self.session = open_session(self.path, intra_op_threads=intra_op_threads, spinning=spinning, engine=engine)
        meta = custom_metadata(self.session)
        task = meta.get("task", "detect")
        if task != "detect":
            raise MlopsError(
                f"{self.path.name} is a {task!r} model, not a detector.", code="model_invalid", details={"task": task}
            )
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        self.output_names = [self.session.get_outputs()[0].name]
        self.stride = int(literal(meta.get("stride"), 32))
        self.input_size = self._input_size(model_input.shape, imgsz, literal(meta.get("imgsz")))
        # A graph that accepts any size gets Ultralytics' minimum-rectangle letterbox, as its predict does.
        self.dynamic = not all(isinstance(d, int) and d > 0 for d in model_input.shape[2:4])
        self.rect = self.dynamic if rect is None else bool(rect)
        if self.rect and not self.dynamic:
            raise MlopsError(
                f"{self.path.name} has a fixed input size: rect=True needs a dynamic export.", code="model_invalid"
            )
        height, width = self.input_size
        self.imgsz: int | tuple[int, int] = height if height == width else self.input_size
        stored_end2end = meta.get("end2end")
        self.end2end: bool | None = None if stored_end2end is None else stored_end2end == "True"
        self.class_names = _class_names(class_names, literal(meta.get("names")))
        self._check_classes()
        self._resize = _cv2_resizer()
        self._local = threading.local()

    # -- set-up ---------------------------------------------------------------------------------

    def _input_size(self, shape: list, given: int | Sequence[int] | None, stored: Any) -> tuple[int, int]:
        fixed = len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:])
        wanted = given if given is not None else stored
        if isinstance(wanted, int):
            wanted = (wanted, wanted)
        if fixed:
            size = (int(shape[2]), int(shape[3]))
            if wanted is not None and tuple(int(v) for v in wanted) != size:
                logger.warning("detector.imgsz_ignored path=%s asked=%s input=%s", self.path.name, wanted, size)
            return size
        if wanted is None:
            return (640, 640)
        height, width = (int(v) for v in wanted)
        if height % self.stride or width % self.stride:
            raise MlopsError(
                f"imgsz {wanted} is not a multiple of the model stride {self.stride}.", code="model_invalid"
            )
        return (height, width)

    def _check_classes(self) -> None:
        shape = self.session.get_outputs()[0].shape
        if len(shape) != 3:
            raise MlopsError(f"Unexpected detector output shape {shape}.", code="model_invalid")
        channels = shape[1] if isinstance(shape[1], int) else None
        layout_is_classic = self.end2end is False or (self.end2end is None and shape[2] != 6)
        nc = channels - 4 if layout_is_classic and channels is not None else None
        if self.class_names is None:
            if nc is None:
                raise MlopsError("The model stores no class names and none were given.", code="model_invalid")
            self.class_names = [str(i) for i in range(nc)]
        elif nc is not None and nc != len(self.class_names):
            raise MlopsError(
                f"The model predicts {nc} classes but {len(self.class_names)} class names were given.",
                code="model_invalid",
                details={"model_classes": nc, "class_names": len(self.class_names)},
            )

    # -- inference ------------------------------------------------------------------------------

    def predict(
        self, image: Image.Image | np.ndarray, conf: float = 0.25, iou: float = 0.7, max_det: int = 300
    ) -> DetectionResult:
        """Detect objects in an RGB image (a Pillow image, or an HxWx3 uint8 RGB array).

        A Pillow image decoded at a reduced scale (images.decode_image with `fit`) gets its boxes,
        width and height in the upload's own pixels.
        """
        check_thresholds(conf, iou, max_det)
        started = time.perf_counter()
        rgb = _as_rgb_array(image)
        height, width = rgb.shape[:2]
        tensor, box = self.preprocess(rgb)
        prepared = time.perf_counter()
        output = self.session.run(self.output_names, {self.input_name: tensor})[0]
        ran = time.perf_counter()
        source = _source(image)
        boxes = self.decode(output, box, width, height, conf=conf, iou=iou, max_det=max_det, source=source)
        width, height = source or (width, height)
        done = time.perf_counter()
        return DetectionResult(
            boxes=boxes,
            width=width,
            height=height,
            inference_ms=(done - started) * 1000,
            preprocess_ms=(prepared - started) * 1000,
            run_ms=(ran - prepared) * 1000,
            postprocess_ms=(done - ran) * 1000,
        )

    def preprocess(self, rgb: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Letterbox an RGB uint8 image into this thread's (1, 3, H, W) float input, scaled to 0-1."""
        input_height, input_width = self.input_size
        box = letterbox_geometry(
            rgb.shape[1], rgb.shape[0], input_height, input_width, rect=self.rect, stride=self.stride
        )
        if (box.new_width, box.new_height) != (rgb.shape[1], rgb.shape[0]):
            rgb = self._resize(rgb, box.new_width, box.new_height)
        tensor = self._buffer(box)
        region = tensor[0, :, box.top : box.top + box.new_height, box.left : box.left + box.new_width]
        # uint8 / 255 in float32, as Ultralytics divides: the model sees bit-identical inputs.
        np.divide(np.ascontiguousarray(rgb.transpose(2, 0, 1)), np.float32(255), out=region, casting="unsafe")
        if self.input_dtype is np.float16:
            return tensor.astype(np.float16), box
        return tensor, box

    def _buffer(self, box: Letterbox) -> np.ndarray:
        """This thread's input tensor for the letterboxed shape, padding already in place."""
        buffers: dict | None = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        shape = (box.input_height, box.input_width)
        entry = buffers.get(shape)
        if entry is None:
            if len(buffers) >= MAX_BUFFERS:  # rect mode: one per aspect ratio seen; keep a few
                buffers.clear()
            entry = buffers[shape] = [np.empty((1, 3, *shape), dtype=np.float32), None]
        tensor, placement = entry
        if placement != (box.left, box.top, box.new_width, box.new_height):
            # Only the padding depends on the placement; refill it when the placement moves.
            tensor.fill(np.float32(PAD_VALUE) / np.float32(255))
            entry[1] = (box.left, box.top, box.new_width, box.new_height)
        return tensor

    def decode(
        self,
        output: np.ndarray,
        box: Letterbox,
        width: int,
        height: int,
        *,
        conf: float,
        iou: float,
        max_det: int,
        source: tuple[int, int] | None = None,
    ) -> tuple[Box, ...]:
        """Turn the raw output into boxes in the original image, in either head layout.

        `source` is the (width, height) of the upload when the image was decoded at a reduced scale
        (images.source_size): the boxes are scaled up to it.
        """
        prediction = np.asarray(output, dtype=np.float32)
        if prediction.ndim != 3 or prediction.shape[0] != 1:
            raise MlopsError(f"Unexpected detector output shape {prediction.shape}.", code="model_invalid")
        end2end = self.end2end
        if end2end is None:  # no metadata: (1, K, 6) is end-to-end, (1, 4+nc, N) is classic
            end2end = prediction.shape[2] == 6 and prediction.shape[1] != 6
        if end2end:
            xyxy, scores, classes = self._decode_end2end(prediction[0], conf, max_det)
        else:
            xyxy, scores, classes = self._decode_classic(prediction[0], conf, iou, max_det)
        if len(scores):
            xyxy[:, [0, 2]] -= box.pad_x
            xyxy[:, [1, 3]] -= box.pad_y
            xyxy[:, [0, 2]] /= np.float32(box.gain_x)
            xyxy[:, [1, 3]] /= np.float32(box.gain_y)
            xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
            xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        if source is not None:
            xyxy, (width, height) = _scaled_to(xyxy, width, height, source), source
        return _build_boxes(xyxy, scores, classes, width, height, self.class_names)

    @staticmethod
    def _decode_end2end(rows: np.ndarray, conf: float, max_det: int):
        keep = np.flatnonzero(rows[:, 4] > conf)[:max_det]
        picked = rows[keep]
        return picked[:, :4].copy(), picked[:, 4], picked[:, 5].astype(np.intp)

    @staticmethod
    def _decode_classic(channels: np.ndarray, conf: float, iou: float, max_det: int):
        scores_by_class = channels[4:]
        # max over classes is ~6x cheaper than argmax along this axis: argmax only the candidates.
        best = scores_by_class.max(axis=0)
        candidates = np.flatnonzero(best > conf)
        if not candidates.size:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.intp)
        scores, classes = best[candidates], scores_by_class[:, candidates].argmax(axis=0)
        if candidates.size > MAX_NMS:
            top = np.argsort(-scores, kind="stable")[:MAX_NMS]
            candidates, scores, classes = candidates[top], scores[top], classes[top]
        centre = channels[0:2, candidates].T
        half = channels[2:4, candidates].T / np.float32(2)
        xyxy = np.concatenate((centre - half, centre + half), axis=1)
        # Class-aware NMS the Ultralytics way: shift each class far apart and run one NMS.
        offsets = (classes.astype(np.float32) * np.float32(MAX_WH))[:, None]
        keep = nms(xyxy + offsets, scores, iou, max_keep=max_det)
        return xyxy[keep], scores[keep], classes[keep]

    def describe(self) -> dict:
        return {
            "runtime": engine_of(self.session),
            "imgsz": self.imgsz,
            "class_names": list(self.class_names),
            "end2end": self.end2end,
            "stride": self.stride,
            "rect": self.rect,
        }


def load_ultralytics(path: Path, task: str, intra_op_threads: int | None = None):
    """Ultralytics' YOLO on `.pt` weights for `task` (imports torch); model_load_failed when it cannot load.

    A .pt file is a pickle: call this only on weights whose sha256 matched the registry.
    """
    from ultralytics import YOLO

    if intra_op_threads:
        import torch

        torch.set_num_threads(int(intra_op_threads))
    if not path.is_file():
        raise MlopsError(f"Model file {path} does not exist.", code="model_load_failed")
    try:
        return YOLO(str(path), task=task)
    except Exception as exc:  # torch.load and Ultralytics raise many unrelated types
        raise MlopsError(f"Ultralytics cannot load {path.name}: {exc}", code="model_load_failed") from exc


class TorchDetector:
    """Fallback for a version without an ONNX file: Ultralytics predict on the .pt weights, same interface.

    `rect=True` is Ultralytics' own default (minimum-rectangle letterbox, like a dynamic ONNX
    export); `rect=False` letterboxes to the full square like a fixed-size ONNX export.
    Imports Ultralytics (and torch) when constructed. A .pt file is a pickle: load only weights whose
    sha256 matched the registry.
    """

    kind = "detection"

    def __init__(
        self,
        pt_path: Path | str,
        class_names: Sequence[str] | dict | None = None,
        imgsz: int | Sequence[int] | None = None,
        intra_op_threads: int | None = None,
        *,
        rect: bool = True,
    ):
        self.path = Path(pt_path)
        self.model = load_ultralytics(self.path, "detect", intra_op_threads)
        stored = self.model.names
        self.class_names = _class_names(class_names, stored)
        if len(self.class_names) != len(stored):
            raise MlopsError(
                f"The model predicts {len(stored)} classes but {len(self.class_names)} class names were given.",
                code="model_invalid",
                details={"model_classes": len(stored), "class_names": len(self.class_names)},
            )
        size = imgsz if imgsz is not None else 640
        height, width = (int(size), int(size)) if isinstance(size, int) else (int(v) for v in size)
        self.input_size = (height, width)
        self.imgsz = height if height == width else self.input_size
        self.rect = rect
        self._lock = threading.Lock()

    def predict(
        self, image: Image.Image | np.ndarray, conf: float = 0.25, iou: float = 0.7, max_det: int = 300
    ) -> DetectionResult:
        check_thresholds(conf, iou, max_det)
        started = time.perf_counter()
        rgb = _as_rgb_array(image)
        height, width = rgb.shape[:2]
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        with self._lock:  # an Ultralytics predictor is not safe to share between threads
            result = self.model.predict(
                bgr, imgsz=list(self.input_size), conf=conf, iou=iou, max_det=max_det, rect=self.rect, verbose=False
            )[0]
        data = result.boxes.data.cpu().numpy().astype(np.float32)
        xyxy, source = data[:, :4], _source(image)
        if source is not None:
            xyxy, (width, height) = _scaled_to(xyxy, width, height, source), source
        boxes = _build_boxes(xyxy, data[:, 4], data[:, 5].astype(np.intp), width, height, self.class_names)
        elapsed = (time.perf_counter() - started) * 1000
        return DetectionResult(boxes=boxes, width=width, height=height, inference_ms=elapsed, run_ms=elapsed)

    def describe(self) -> dict:
        return {
            "runtime": "ultralytics",
            "imgsz": self.imgsz,
            "class_names": list(self.class_names),
            "rect": self.rect,
        }
