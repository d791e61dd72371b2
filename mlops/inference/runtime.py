"""ONNX Runtime sessions opened the same way for every model we serve."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import onnxruntime as ort

from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)

PROVIDERS = ["CPUExecutionProvider"]


def session_options(intra_op_threads: int | None = None, *, spinning: bool = False) -> ort.SessionOptions:
    """Full graph optimisation, one inference at a time per session, worker threads that sleep when idle.

    ONNX Runtime's default spinning threads win ~20% per YOLO run on a quiet 2-core host but lose
    12-55% as soon as another process wants the CPU (a Celery worker training, other web workers),
    which is this product's normal state; pass spinning=True for a dedicated inference host. Spinning
    threads spin only while a run lasts: they stop as each run returns (session.force_spinning_stop),
    where ONNX Runtime's default keeps a core busy for a while after every run (measured on a 640
    YOLO: 50 ms of CPU in the 200 ms after a run by default, none with the stop, same run time).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Memory-pattern planning keeps a second arena per input shape: ~30 MB for a 640 YOLO, no
    # measurable speed-up on CPU (measured 60.2 vs 60.7 ms per run here).
    options.enable_mem_pattern = False
    if intra_op_threads:
        options.intra_op_num_threads = int(intra_op_threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if spinning:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    options.log_severity_level = 3  # errors only: ORT warns about unused initialisers on every YOLO export
    return options


def open_session(
    path: Path | str, *, intra_op_threads: int | None = None, spinning: bool = False
) -> ort.InferenceSession:
    """Open an ONNX file, turning ONNX Runtime's many error types into one clear MlopsError."""
    path = Path(path)
    if not path.is_file():
        raise MlopsError(f"Model file {path} does not exist.", code="model_load_failed", details={"path": str(path)})
    try:
        return ort.InferenceSession(
            str(path), session_options(intra_op_threads, spinning=spinning), providers=PROVIDERS
        )
    except Exception as exc:  # ONNX Runtime raises unrelated pybind types
        raise MlopsError(
            f"ONNX Runtime cannot load {path.name}: {exc}", code="model_load_failed", details={"path": str(path)}
        ) from exc


def custom_metadata(session: ort.InferenceSession) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map or {})


def literal(value: str | None, default=None):
    """Parse a Python literal stored as text in ONNX metadata (Ultralytics writes str(dict))."""
    if value is None or value == "":
        return default
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        logger.warning("onnx.metadata_unreadable value=%.80r", value)
        return default
