"""ONNX models opened the same way for every model we serve: on ONNX Runtime, or compiled by OpenVINO.

Both engines run the same ONNX file. OpenVINO's CPU plugin runs a YOLO 1.5-1.7x faster than ONNX
Runtime on the same cores where the CPU has AVX-512 (a 2-core Xeon: a 640 yolo11n 27 ms against 47
ms, its 640x480 rectangle 22.5 against 34 ms) and 1.04-1.08x on AVX2 alone (a 2-core EPYC: 77-87
against 80-94 ms), in float32 like ONNX Runtime, so boxes agree to a fraction of a pixel; a
process holds ~100 MB more with it (half of it OpenVINO's shared libraries, half buffers and
compiled kernels). `auto`, the serving default, takes OpenVINO only where it pays (resolve_engine).
`open_session(engine="openvino")` returns an object answering the part of ONNX Runtime's
InferenceSession the predictors use (inputs, outputs, metadata, run), and falls back to ONNX
Runtime, with a warning, for a graph OpenVINO cannot compile.
"""

from __future__ import annotations

import ast
import functools
import logging
import queue
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mlops.exceptions import MlopsError

logger = logging.getLogger(__name__)

PROVIDERS = ["CPUExecutionProvider"]
ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
AUTO = "auto"  # OpenVINO where the CPU has AVX-512, ONNX Runtime elsewhere (resolve_engine)
ENGINES = (AUTO, OPENVINO, ONNXRUNTIME)
# One stream tuned for latency; float32 even where the CPU offers bf16 (OpenVINO's default there).
OPENVINO_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
# Where OpenVINO keeps the models it compiled (None: compile at every load); see use_openvino_cache.
_openvino_cache_dir: Path | None = None


def use_openvino_cache(directory: Path | str | None) -> None:
    """Keep OpenVINO's compiled models in `directory` (None or "": compile at every load).

    OpenVINO keys each compiled blob by the graph, the compile options and its own version, so a
    process that opens a model this host compiled before imports it instead of compiling it again
    (a 640 yolo11n: 0.58 s to compile, 0.20 s from the cache on a 2-core EPYC). A directory that
    cannot be used (read-only, disk full) costs only the cache: the model is compiled without it.
    """
    global _openvino_cache_dir
    _openvino_cache_dir = Path(directory) if directory else None


def resolve_engine(engine: str, *, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The engine `auto` stands for on this machine: OpenVINO where the CPU has AVX-512, where it runs
    a YOLO 1.5-1.7x faster than ONNX Runtime; ONNX Runtime elsewhere, where OpenVINO gained 3-8% for
    ~100 MB more per process (AVX2 alone) or was not measured (other architectures)."""
    if engine != AUTO:
        return engine
    return OPENVINO if _has_avx512(cpuinfo) else ONNXRUNTIME


@functools.cache
def _has_avx512(cpuinfo: Path) -> bool:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and "avx512f" in line.split() for line in text.splitlines())


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
    path: Path | str,
    *,
    intra_op_threads: int | None = None,
    spinning: bool = False,
    engine: str = ONNXRUNTIME,
) -> ort.InferenceSession | OpenVinoSession:
    """Open an ONNX file on `engine`, turning the engine's many error types into one clear MlopsError.

    `engine` is `openvino`, `onnxruntime` or `auto` (resolve_engine). `spinning` is ONNX Runtime's
    (OpenVINO's threads already sleep as a run returns). A graph OpenVINO cannot read or compile
    opens on ONNX Runtime instead: serving does not depend on it.
    """
    path = Path(path)
    if not path.is_file():
        raise MlopsError(f"Model file {path} does not exist.", code="model_load_failed", details={"path": str(path)})
    if engine not in ENGINES:
        raise MlopsError(
            f"Unknown inference engine {engine!r}: one of {', '.join(ENGINES)}.",
            code="model_load_failed",
            details={"engine": engine},
        )
    engine = resolve_engine(engine)
    if engine == OPENVINO:
        try:
            return OpenVinoSession(path, intra_op_threads=intra_op_threads)
        except (RuntimeError, ImportError) as exc:  # OpenVINO's error for any graph it cannot take; or absent
            logger.warning("runtime.openvino_fallback path=%s error=%.200s", path.name, exc)
    try:
        return ort.InferenceSession(
            str(path), session_options(intra_op_threads, spinning=spinning), providers=PROVIDERS
        )
    except Exception as exc:  # ONNX Runtime raises unrelated pybind types
        raise MlopsError(
            f"ONNX Runtime cannot load {path.name}: {exc}", code="model_load_failed", details={"path": str(path)}
        ) from exc


def custom_metadata(session: ort.InferenceSession | OpenVinoSession) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map or {})


def engine_of(session: ort.InferenceSession | OpenVinoSession) -> str:
    """The engine a session runs on (what `describe()` reports): open_session may have fallen back."""
    return OPENVINO if isinstance(session, OpenVinoSession) else ONNXRUNTIME


@dataclass(frozen=True)
class TensorInfo:
    """ONNX Runtime's NodeArg as far as the predictors read it: a dynamic dimension is a string."""

    name: str
    shape: list
    type: str


@dataclass(frozen=True)
class ModelMeta:
    custom_metadata_map: dict[str, str]


_OPENVINO_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "i64": "tensor(int64)", "i32": "tensor(int32)"}


class OpenVinoSession:
    """An ONNX file compiled by OpenVINO for the CPU, with the InferenceSession calls the predictors make.

    One stream tuned for latency (OpenVINO's LATENCY hint), float32 arithmetic even where the CPU
    offers bf16 (OpenVINO's default there, which moves boxes by pixels). Thread-safe: a compiled
    model runs one inference per request object, so concurrent callers each take one from a pool
    (as many as ever ran at once, one in the usual serving of one prediction at a time).
    """

    def __init__(self, path: Path, *, intra_op_threads: int | None = None):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        config = dict(OPENVINO_CONFIG)
        if intra_op_threads:
            config["INFERENCE_NUM_THREADS"] = int(intra_op_threads)
        self.compiled = _compile(core, model, config)
        self._inputs = [_tensor_info(port) for port in model.inputs]
        self._outputs = [_tensor_info(port) for port in model.outputs]
        self._output_index = {info.name: index for index, info in enumerate(self._outputs)}
        self._meta = ModelMeta(_framework_metadata(model))
        self._requests: queue.SimpleQueue = queue.SimpleQueue()

    def get_inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    def get_outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def get_modelmeta(self) -> ModelMeta:
        return self._meta

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            request = self._requests.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            # share_inputs: the caller's array is read in place; outputs are copied out of the request.
            results = request.infer(feeds, share_inputs=True, share_outputs=False)
            values = list(results.values())
        finally:
            self._requests.put(request)
        names = output_names or [info.name for info in self._outputs]
        return [values[self._output_index[name]] for name in names]


def _compile(core, model, config: dict):
    """Compile through the cache when one is set; without it when the cache fails."""
    cache_dir = _openvino_cache_dir
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            return core.compile_model(model, "CPU", {**config, "CACHE_DIR": str(cache_dir)})
        except (OSError, RuntimeError) as exc:
            logger.warning("runtime.openvino_cache_unusable dir=%s error=%.200s", cache_dir, exc)
    return core.compile_model(model, "CPU", config)


def _tensor_info(port) -> TensorInfo:
    shape = [int(d.get_length()) if d.is_static else f"dim{i}" for i, d in enumerate(port.get_partial_shape())]
    kind = port.get_element_type().get_type_name()
    return TensorInfo(name=port.get_any_name(), shape=shape, type=_OPENVINO_TYPES.get(kind, f"tensor({kind})"))


def _framework_metadata(model) -> dict[str, str]:
    """The ONNX file's metadata_props, which OpenVINO's ONNX reader keeps under rt_info["framework"]."""
    if not model.has_rt_info(["framework"]):
        return {}
    return {str(key): value.astype(str) for key, value in model.get_rt_info(["framework"]).astype(dict).items()}


def literal(value: str | None, default=None):
    """Parse a Python literal stored as text in ONNX metadata (Ultralytics writes str(dict))."""
    if value is None or value == "":
        return default
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        logger.warning("onnx.metadata_unreadable value=%.80r", value)
        return default
