"""Turn a version's files into a predictor, and check that it answers sanely before it serves.

`load_predictor` raises a clear MlopsError (code "model_load_failed" or "model_invalid") when the
files cannot make a predictor: missing, corrupt or garbage ONNX, class names that do not match the
model. `smoke_test` never raises for a model problem: it returns SmokeResult(ok=False, detail=...)
when a loaded model answers wrongly (bad shapes, non-finite values, probabilities that do not sum
to 1, answers that change between two identical calls). Callers treat both as a failed smoke test.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlops.exceptions import MlopsError, SmokeTestFailed
from mlops.inference.classifier import OnnxClassifier, TorchClassifier
from mlops.inference.detector import DetectionResult, OnnxDetector, TorchDetector
from mlops.inference.runtime import ONNXRUNTIME
from mlops.inference.tabular import TabularScorer, XGBoostScorer, parse_schema

logger = logging.getLogger(__name__)

DETECTION = "detection"
TABULAR = "tabular"
CLASSIFICATION = "classification"
SAMPLE_SIZE = (480, 640)  # height, width of the synthetic smoke-test image

# The artifact roles a predictor is built from, per kind, in order of preference: ONNX first; the
# source format only for a version without ONNX (it imports torch or xgboost into the process).
ROLE_PREFERENCE = {
    DETECTION: (("onnx",), ("weights",)),
    TABULAR: (("onnx",), ("xgboost",)),
    CLASSIFICATION: (("onnx",), ("weights",)),
}
# Every file a serving process may ever load for a version: what promotion verifies.
SERVING_ROLES = (*dict.fromkeys(role for choices in ROLE_PREFERENCE.values() for roles in choices for role in roles),
                 "feature_schema")  # fmt: skip


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    detail: str
    latency_ms: float


def load_predictor(
    kind: str,
    files: Mapping[str, Path],
    metadata: Mapping,
    *,
    intra_op_threads: int | None = None,
    spinning: bool = False,
    engine: str = ONNXRUNTIME,
) -> OnnxDetector | TorchDetector | TabularScorer | XGBoostScorer | OnnxClassifier | TorchClassifier:
    """Build the predictor for a version: ONNX when the version has it, the source format only without it.

    `files` maps artifact roles ("onnx", "weights", "xgboost", "feature_schema") to local paths;
    `metadata` is the version metadata (class_names, imgsz, feature_schema). `spinning=True` keeps
    ONNX Runtime's threads spinning between work (faster on a dedicated host, see runtime.session_options);
    `engine` runs the image models' ONNX files on ONNX Runtime or OpenVINO (runtime.open_session).
    """
    files = {str(role): Path(path) for role, path in files.items()}
    if kind == DETECTION:
        options = {
            "class_names": metadata.get("class_names") or None,
            "imgsz": metadata.get("imgsz") or None,
            "intra_op_threads": intra_op_threads,
        }
        if "onnx" in files:
            return OnnxDetector(files["onnx"], **options, spinning=spinning, engine=engine)
        if "weights" in files:
            logger.info("loader.torch_fallback path=%s", files["weights"].name)
            return TorchDetector(files["weights"], **options)
        raise MlopsError("The version has neither an ONNX file nor weights.", code="model_load_failed")
    if kind == CLASSIFICATION:
        options = {
            "class_names": metadata.get("class_names") or None,
            "imgsz": metadata.get("imgsz") or None,
            "intra_op_threads": intra_op_threads,
        }
        if "onnx" in files:
            return OnnxClassifier(files["onnx"], **options, spinning=spinning, engine=engine)
        if "weights" in files:
            logger.info("loader.torch_fallback path=%s", files["weights"].name)
            return TorchClassifier(files["weights"], **options)
        raise MlopsError("The version has neither an ONNX file nor weights.", code="model_load_failed")
    if kind == TABULAR:
        schema = metadata.get("feature_schema")
        if not schema:
            if "feature_schema" not in files:
                raise MlopsError("The version has no feature schema.", code="model_load_failed")
            schema = _read_json(files["feature_schema"])
        class_names = metadata.get("class_names")
        if not class_names:
            raise MlopsError("The version metadata has no class_names.", code="model_load_failed")
        threads = intra_op_threads or 1
        if "onnx" in files:
            return TabularScorer(files["onnx"], schema, class_names, intra_op_threads=threads)
        if "xgboost" in files:
            logger.info("loader.xgboost_fallback path=%s", files["xgboost"].name)
            return XGBoostScorer(files["xgboost"], schema, class_names, intra_op_threads=threads)
        raise MlopsError("The version has neither an ONNX file nor an XGBoost model.", code="model_load_failed")
    raise MlopsError(f"Unknown model kind {kind!r}.", code="model_load_failed")


def serving_roles(kind: str, available: Collection[str], metadata: Mapping) -> list[str]:
    """The roles of the files `load_predictor` will build this version from ([] when none is complete).

    A tabular version whose metadata lacks its feature schema needs the schema file too.
    """
    for roles in ROLE_PREFERENCE.get(kind, ()):
        if all(role in available for role in roles):
            wanted = list(roles)
            if kind == TABULAR and not metadata.get("feature_schema") and "feature_schema" in available:
                wanted.append("feature_schema")
            return wanted
    return []


def load_checked_predictor(kind: str, files: Mapping[str, Path], metadata: Mapping, **options):
    """Load and smoke-test in one call, raising SmokeTestFailed: the loader a serving process wants."""
    predictor = load_predictor(kind, files, metadata, **options)
    result = smoke_test(predictor, metadata)
    if not result.ok:
        raise SmokeTestFailed(f"smoke test failed: {result.detail}", details={"detail": result.detail})
    return predictor


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MlopsError(f"Cannot read {path.name}: {exc}", code="model_load_failed") from exc


def smoke_test(predictor, metadata: Mapping | None = None) -> SmokeResult:
    """Run a fixed, deterministic sample twice and check the answers; never raises for a model problem.

    `latency_ms` is the second (warm) call. The first call doubles as the serving warm-up.
    """
    metadata = metadata or {}
    started = time.perf_counter()
    try:
        if predictor.kind == DETECTION:
            detail, latency = _smoke_detector(predictor, metadata)
        elif predictor.kind == TABULAR:
            detail, latency = _smoke_tabular(predictor, metadata)
        elif predictor.kind == CLASSIFICATION:
            detail, latency = _smoke_classifier(predictor, metadata)
        else:
            return SmokeResult(False, f"unknown predictor kind {predictor.kind!r}", 0.0)
    except _SmokeFailure as failure:
        return SmokeResult(False, str(failure), (time.perf_counter() - started) * 1000)
    except MlopsError as exc:
        return SmokeResult(False, f"{exc.code}: {exc.message}", (time.perf_counter() - started) * 1000)
    except Exception as exc:  # noqa: BLE001  (whatever a broken model raises is a failed smoke test, not a crash)
        logger.warning("loader.smoke_test_error error=%r", exc)
        return SmokeResult(False, f"{type(exc).__name__}: {exc}", (time.perf_counter() - started) * 1000)
    return SmokeResult(True, detail, latency)


class _SmokeFailure(Exception):
    pass


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _SmokeFailure(message)


def sample_image(height: int = SAMPLE_SIZE[0], width: int = SAMPLE_SIZE[1]) -> np.ndarray:
    """A fixed RGB picture with gradients, edges and flat shapes: the same bytes on every machine."""
    rows = np.arange(height, dtype=np.float32)[:, None] / max(height - 1, 1)
    cols = np.arange(width, dtype=np.float32)[None, :] / max(width - 1, 1)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = (255 * cols).astype(np.uint8)
    image[..., 1] = (255 * rows).astype(np.uint8)
    image[..., 2] = (255 * (1 - cols) * rows).astype(np.uint8)
    image[height // 6 : height // 2, width // 8 : width // 3] = (220, 30, 30)
    image[height // 2 : 5 * height // 6, width // 2 : 7 * width // 8] = (20, 20, 200)
    yy, xx = np.ogrid[:height, :width]
    disc = (yy - height // 3) ** 2 + (xx - 2 * width // 3) ** 2 < (height // 8) ** 2
    image[disc] = (250, 250, 250)
    return image


def _expected_names(predictor, metadata: Mapping) -> None:
    names = metadata.get("class_names")
    if names:
        _require(
            list(names) == list(predictor.class_names),
            f"the model's class names {list(predictor.class_names)} differ from the version's {list(names)}",
        )


def _smoke_detector(predictor, metadata: Mapping) -> tuple[str, float]:
    _expected_names(predictor, metadata)
    image = sample_image()
    if isinstance(predictor, OnnxDetector):
        tensor, _ = predictor.preprocess(image)
        raw = predictor.session.run(predictor.output_names, {predictor.input_name: tensor})[0]
        _require(raw.ndim == 3 and raw.shape[0] == 1, f"raw output has shape {raw.shape}")
        _require(bool(np.isfinite(raw).all()), "raw output has NaN or infinite values")
        if not (raw.shape[2] == 6 and raw.shape[1] != 6):
            _require(raw.shape[1] == 4 + len(predictor.class_names), f"raw output shape {raw.shape} for classes")
    first = predictor.predict(image, conf=0.001, iou=0.7, max_det=300)
    warm_started = time.perf_counter()
    second = predictor.predict(image, conf=0.001, iou=0.7, max_det=300)
    latency = (time.perf_counter() - warm_started) * 1000
    _check_detection(first, image.shape[1], image.shape[0], len(predictor.class_names))
    _require(
        [box.to_dict() for box in first.boxes] == [box.to_dict() for box in second.boxes],
        "two identical calls gave different boxes",
    )
    return f"{len(first.boxes)} boxes on the sample image at conf 0.001", latency


def _check_detection(result: DetectionResult, width: int, height: int, n_classes: int) -> None:
    _require((result.width, result.height) == (width, height), "the result reports a different image size")
    for box in result.boxes:
        x1, y1, x2, y2 = box.xyxy
        _require(all(math.isfinite(v) for v in (*box.xyxy, box.confidence)), "a box has non-finite values")
        # Not x1 <= x2: Ultralytics passes inverted boxes from barely trained heads through, and so do we.
        inside = min(x1, x2) >= 0 and max(x1, x2) <= width and min(y1, y2) >= 0 and max(y1, y2) <= height
        _require(inside, f"box {box.xyxy} is outside the image")
        _require(0.0 <= box.confidence <= 1.0, f"confidence {box.confidence} is not a probability")
        _require(0 <= box.class_id < n_classes, f"class id {box.class_id} is not one of the {n_classes} classes")


def _smoke_classifier(predictor, metadata: Mapping) -> tuple[str, float]:
    """A probability vector over the version's classes, the same on two identical calls."""
    _expected_names(predictor, metadata)
    n_classes = len(metadata.get("class_names") or predictor.class_names)
    image = sample_image()
    if isinstance(predictor, OnnxClassifier):
        raw = predictor.session.run(predictor.output_names, {predictor.input_name: predictor.preprocess(image)})[0]
        _require(raw.shape == (1, n_classes), f"raw output has shape {raw.shape} for {n_classes} classes")
        _require(bool(np.isfinite(raw).all()), "raw output has NaN or infinite values")
    first = predictor.predict(image, top_k=n_classes)
    warm_started = time.perf_counter()
    second = predictor.predict(image, top_k=n_classes)
    latency = (time.perf_counter() - warm_started) * 1000
    probabilities = np.asarray(first.probabilities, dtype=np.float64)
    _require(len(probabilities) == n_classes, f"{len(probabilities)} probabilities for {n_classes} classes")
    _require(bool(np.isfinite(probabilities).all()), "a probability is NaN or infinite")
    _require(bool((probabilities >= 0).all()), f"a probability is negative: {probabilities.min():.6g}")
    total = float(probabilities.sum())
    _require(abs(total - 1.0) <= 1e-3, f"probabilities sum to {total:.6f}, not 1")
    _require(
        (first.width, first.height) == (image.shape[1], image.shape[0]), "the result reports a different image size"
    )
    best = first.top1
    _require(best.class_id == int(np.argmax(probabilities)), "the top class is not the most probable one")
    _require(best.class_name == predictor.class_names[best.class_id], "top class name and id disagree")
    _require(first.probabilities == second.probabilities, "two identical calls gave different probabilities")
    return f"top-1 {best.class_name} ({best.probability:.3f}) on the sample image", latency


def _smoke_tabular(predictor, metadata: Mapping) -> tuple[str, float]:
    _expected_names(predictor, metadata)
    schema = metadata.get("feature_schema")
    if schema:
        expected = [feature.name for feature in parse_schema(schema)]
        _require(expected == list(predictor.feature_names), "the scorer's feature order differs from the version's")
    records = [{feature.name: feature.typical_value() for feature in predictor.features}]
    for bound in ("min", "max"):
        values = {feature.name: getattr(feature, bound) for feature in predictor.features}
        if all(value is not None for value in values.values()):
            records.append(values)
    first = predictor.predict(records)
    warm_started = time.perf_counter()
    second = predictor.predict(records)
    latency = (time.perf_counter() - warm_started) * 1000
    _require(len(first) == len(records), f"{len(records)} records gave {len(first)} predictions")
    for prediction in first:
        probabilities = list(prediction.probabilities.values())
        _require(list(prediction.probabilities) == list(predictor.class_names), "probabilities are not per class")
        _require(all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probabilities), "a probability is out of [0, 1]")
        _require(abs(sum(probabilities) - 1.0) < 1e-4, f"probabilities sum to {sum(probabilities):.6f}, not 1")
        _require(prediction.label == predictor.class_names[prediction.class_id], "label and class id disagree")
    _require(first == second, "two identical calls gave different probabilities")
    return f"{len(records)} records scored; first: {first[0].label}", latency
