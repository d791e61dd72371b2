"""HTTP serving benchmark: our API end to end on a real gunicorn server against ONNX Runtime, Ultralytics, peers.

    python -m bench http [--arch yolo11n|yolo26n] [--runs 15] [--block 6] [--no-peers] [--swap-requests 300]

Builds a 640-px detector (untrained weights are fine for timing), exported twice (dynamic shape, as
trained versions are, and fixed 640x640), and the breast-cancer XGBoost model; registers and
promotes them through the registry in a temporary VAR_DIR (own Redis, SQLite, MLflow store),
starts gunicorn with the Procfile's `web` line and two peer servers, and measures in the same run:
  (a) raw ONNX Runtime session.run on a 1x3x640x640 tensor of each ONNX file; and on bus.jpg's
      640x480 rectangle as a batch of 1 and of 4 (does batched inference pay?)
  (a') raw OpenVINO on the same tensor of the fixed export, compiled as the server compiles it (the
      engine of the image models where SERVING_ENGINE resolves to it): what that engine alone costs
  (b) Ultralytics YOLO(.pt).predict of the same weights on bus.jpg at imgsz 640
  (c) POST /api/v1/detections/ end to end (upload to JSON), one client: fixed export and dynamic
      export on bus.jpg, dynamic export on a generated 4000x3000 JPEG, and dynamic export on bus.jpg
      with each request sent only once the previous answer's log is written (what the log written
      after an answer costs the next one)
  peers: FastAPI + Ultralytics .pt predict in uvicorn (bench/peers/ultralytics_fastapi.py), and
      `mlflow models serve` of the same registered version fed the tensor its signature declares
      (bench/peers/mlflow_scoring.py), both on bus.jpg
Cases run in blocks, one block per case per round in a rotating order, each block once the servers
and this process are idle: a block's first call is the idle figure, the calls after it, each sent as
soon as the previous answer arrived, the back-to-back figure (the headline). Then throughput at 4
and 16 concurrent clients against back-to-back (a) (windows alternating; HTTP windows end when the
log of their last answer is in the database); a zip of 200 images through POST /api/v1/batches/ on one
batch worker (the Procfile's `worker` line), upload to finish, against back-to-back (a) in alternating
windows; a run of N requests at 4 clients while versions are
promoted and rolled back (failed requests, and whether every answer came from a version that was
in production at some moment during its request); and, on a one-worker server, start to first
answer and the RSS of the worker with both models loaded. Prints a table, writes JSON to
bench/results/. Absolute times depend on the machine and its load: compare the ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DETECTOR = "bench-detector"
FIXED_DETECTOR = "bench-detector-fixed"
TABULAR = "bench-tabular"
HEAVY_LIBRARIES = ("libtorch", "torch/lib", "xgboost/lib", "ultralytics", "sklearn", "pandas/_libs")
TARGETS = {
    "fixed_c_over_a": 1.10,
    "dynamic_c_over_a": 0.95,
    "dynamic_c_over_b": 0.55,
    "photo_c_over_a": 1.3,
    "log_overlapping_over_settled": 1.05,
    "throughput_share": 0.9,
    "batch_share": 0.9,
    "rss_mb": 250.0,
    "start_s": 1.5,
}
PHOTO_SIZE = (4000, 3000)
# The ratios of timed cases with a target (lower is better).
TIMED_RATIOS = (
    "fixed_c_over_a",
    "dynamic_c_over_a",
    "dynamic_c_over_b",
    "photo_c_over_a",
    "log_overlapping_over_settled",
)


# -- plumbing -------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def stats(values: list[float]) -> dict:
    data = np.asarray(values, dtype=np.float64)
    return {
        "n": int(data.size),
        "p50": float(np.percentile(data, 50)),
        "p90": float(np.percentile(data, 90)),
        "p95": float(np.percentile(data, 95)),
        "mean": float(data.mean()),
        "min": float(data.min()),
    }


def web_command(bind: str, workers: int, threads: int) -> tuple[list[str], dict[str, str]]:
    """The Procfile's `web` process (scripts/start.sh web) and the environment gunicorn.conf.py reads."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    environment = {
        "BIND": bind,
        "WEB_WORKERS": str(workers),
        "WEB_THREADS": str(threads),
        "WEB_ACCESS_LOG": "",  # the access log costs a write per request and is not what is measured
        # The clients keep their connections between windows, as a load balancer does: a server closing
        # an idle one just as the next request goes out would reset it.
        "WEB_KEEPALIVE": "120",
    }
    return line.removeprefix("web:").split(), environment


def worker_command() -> tuple[list[str], dict[str, str]]:
    """The Procfile's `worker` process on the batch queue alone, one task at a time."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker:"))
    return line.removeprefix("worker:").split(), {"CELERY_QUEUES": "batch", "WORKER_CONCURRENCY": "1"}


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU time used so far by every thread of these processes (nanosecond schedstat, not 10 ms ticks)."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


def settle(pids: list[int], *, window: float = 0.02, busy_share: float = 0.05, timeout: float = 2.0) -> None:
    """Wait until these processes are idle: under 5% of one core over a 20 ms window.

    The server writes the prediction log after each answer and spinning thread pools keep a core
    busy for a moment after a run; measured without settling, that work lands inside the next
    case's timing (raw session.run measured 140 ms instead of 77 ms here).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pids)
        time.sleep(window)
        if cpu_seconds(pids) - before < busy_share * window:
            return


def memory_of(pid: int) -> dict:
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            status[key] = int(value.split()[0]) / 1024
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {
        "rss_mb": status.get("VmRSS"),
        "peak_rss_mb": status.get("VmHWM"),
        "anon_mb": status.get("RssAnon"),
        "file_mb": status.get("RssFile"),
        "heavy_libraries_mapped": sorted({lib for lib in HEAVY_LIBRARIES if lib in maps}),
    }


class Environment:
    """A throw-away VAR_DIR with its own Redis, and Django set up in this process against it."""

    def __init__(self, work: Path):
        self.work = work
        self.processes: list[subprocess.Popen] = []
        var_dir = work / "var"
        var_dir.mkdir(parents=True)
        redis_port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--dir", str(work)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(redis)
        wait_for_port(redis_port, redis)
        for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_ARTIFACT_ROOT"):
            os.environ.pop(name, None)
        os.environ.update(
            {
                "VAR_DIR": str(var_dir),
                "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "DJANGO_SETTINGS_MODULE": "backend.config.settings",
                # The benches measure the server, not its rate limits (one client address sends everything).
                "API_ANON_RATE": "1000000/min",
                "API_READBACK_RATE": "1000000/min",
                "DEFAULT_DETECTION_MODEL": DETECTOR,
                "DEFAULT_TABULAR_MODEL": TABULAR,
                "YOLO_CONFIG_DIR": str(var_dir / "ultralytics"),
                "LOG_LEVEL": "WARNING",
                "DEBUG": "false",
            }
        )
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def gunicorn(self, workers: int, threads: int) -> tuple[subprocess.Popen, str, float]:
        port = free_port()
        command, knobs = web_command(f"127.0.0.1:{port}", workers, threads)
        log = (self.work / f"gunicorn-{port}.log").open("wb")
        started = time.perf_counter()
        # scripts/start.sh runs gunicorn; find it beside this interpreter (the project's virtualenv).
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, **knobs, "PATH": path}
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process, f"http://127.0.0.1:{port}", started

    def worker(self) -> subprocess.Popen:
        command, knobs = worker_command()
        log = (self.work / "worker.log").open("wb")
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, **knobs, "PATH": path}
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                self.stop(process)


# -- models -------------------------------------------------------------------------------------------------
def register_models(work: Path, arch: str, images: list[Path]) -> dict:
    """Two versions of the dynamic-shape detector (for promote/rollback), one of the same weights exported
    at a fixed 640x640, and one tabular version; version 1 of each promoted."""
    from ultralytics import YOLO

    from backend.registry.services import promote_version, register_from_files
    from bench.bench_inference import build_detector, export
    from tests.models import build_tabular

    weights, onnx_path = build_detector(arch, 640, work, end2end=False, images=images, dynamic=True)
    fixed_onnx = export(weights, 640, work, end2end=False, dynamic=False)
    names = YOLO(str(weights)).names
    metadata = {"class_names": [names[i] for i in sorted(names)], "imgsz": 640, "architecture": arch, "task": "detect"}
    files = {"weights": weights, "onnx": onnx_path}
    detectors = [register_from_files(DETECTOR, "detection", files, metadata=metadata) for _ in range(2)]
    fixed = register_from_files(FIXED_DETECTOR, "detection", {**files, "onnx": fixed_onnx}, metadata=metadata)
    promote_version(fixed, reason="bench")
    tabular_files = build_tabular(work / "tabular", seed=1, rounds=100)
    tabular = register_from_files(TABULAR, "tabular", tabular_files.files(), metadata=tabular_files.metadata)
    promote_version(detectors[0], reason="bench")
    promote_version(tabular, reason="bench")
    record = {f["name"]: f["mean"] for f in tabular_files.feature_schema}
    return {
        "weights": weights,
        "onnx": onnx_path,
        "fixed_onnx": fixed_onnx,
        "detectors": detectors,
        "record": record,
    }


# -- HTTP cases ---------------------------------------------------------------------------------------------
def post_image(session, base: str, jpeg: bytes, timeout: float = 120, *, path: str = "/api/v1/detections/", data=None):
    """One upload to a prediction endpoint: a detection at conf 0.25 unless `path` and `data` say otherwise."""
    return session.post(
        f"{base}{path}", files={"image": ("bus.jpg", jpeg, "image/jpeg")},
        data={"conf": "0.25"} if data is None else data, timeout=timeout,
    )  # fmt: skip


def wait_for_answer(
    base: str,
    jpeg: bytes,
    process: subprocess.Popen,
    timeout: float = 120,
    *,
    path: str = "/api/v1/detections/",
    data=None,
) -> None:
    """Post until the server answers 201 (it is starting); `path` and `data` as for post_image."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            response = post_image(requests, base, jpeg, timeout=30, path=path, data=data)
        except requests.ConnectionError:
            time.sleep(0.02)
            continue
        if response.status_code == 201:
            return
        raise RuntimeError(f"first request failed: {response.status_code} {response.text[:500]}")
    raise RuntimeError("the server did not answer in time")


def wait_for_page(url: str, process: subprocess.Popen, timeout: float = 120) -> float:
    """perf_counter() when `url` first answered 200."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            if requests.get(url, timeout=30).status_code == 200:
                return time.perf_counter()
        except requests.ConnectionError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer in time")


def start_and_memory(env: Environment, jpeg: bytes, record: dict) -> dict:
    """A one-worker server: start to first detection answer, then the worker's RSS with both models loaded."""
    import requests

    process, base, started = env.gunicorn(workers=1, threads=4)
    try:
        wait_for_answer(base, jpeg, process)
        first_answer_s = time.perf_counter() - started
        # Where the start-up went: the first answer of a cheap page (app imported), in a second server.
        env.stop(process)
        process, base, started = env.gunicorn(workers=1, threads=4)
        app_ready_s = wait_for_page(f"{base}/api/v1/models/{DETECTOR}/info/", process) - started
        wait_for_answer(base, jpeg, process)
        model_first_answer_s = time.perf_counter() - started - app_ready_s
        scored = requests.post(f"{base}/api/v1/tabular/predictions/", json={"records": [record]}, timeout=60)
        scored.raise_for_status()
        for _ in range(5):
            post_image(requests, base, jpeg).raise_for_status()
        workers = children_of(process.pid)
        memory = memory_of(workers[0])
    finally:
        env.stop(process)
    return {
        "start_to_first_answer_s": first_answer_s,
        "app_ready_s": app_ready_s,
        "then_first_detection_s": model_first_answer_s,
        **memory,
    }


def raw_session_run(onnx_path: Path, image_path: Path):
    """Case (a): a callable running ONNX Runtime on the image's 1x3x640x640 tensor, nothing else."""
    import onnxruntime as ort
    from PIL import Image

    from mlops.inference.detector import OnnxDetector

    # ONNX Runtime's default options: the library called directly, as a user would.
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    square = OnnxDetector(onnx_path, rect=False)  # a 640x640 tensor even from a dynamic-shape export
    tensor, _ = square.preprocess(np.asarray(Image.open(image_path).convert("RGB")))
    tensor = np.ascontiguousarray(tensor.copy())
    assert tensor.shape == (1, 3, 640, 640)
    return lambda: session.run(None, {input_name: tensor})


def serving_engine() -> str:
    from django.conf import settings

    from mlops.inference.runtime import resolve_engine

    return resolve_engine(settings.SERVING_ENGINE)


def raw_openvino_run(onnx_path: Path, image_path: Path):
    """Case (a'): OpenVINO (the server's engine where SERVING_ENGINE resolves to it), called directly on
    the same 1x3x640x640 tensor as (a), compiled as the server compiles it (latency hint, float32)."""
    import openvino as ov
    from PIL import Image

    from mlops.inference.detector import OnnxDetector
    from mlops.inference.runtime import OPENVINO_CONFIG

    compiled = ov.Core().compile_model(str(onnx_path), "CPU", OPENVINO_CONFIG)
    request = compiled.create_infer_request()
    tensor, _ = OnnxDetector(onnx_path, rect=False).preprocess(np.asarray(Image.open(image_path).convert("RGB")))
    tensor = np.ascontiguousarray(tensor.copy())
    return lambda: request.infer({0: tensor})


def raw_rectangle_run(onnx_path: Path, image_path: Path, batch: int):
    """Raw session.run on the image's 640x480 rectangle (what the API runs on a dynamic export), as a
    batch of `batch` copies: batch 4 against batch 1 says whether batched inference pays here."""
    import onnxruntime as ort
    from PIL import Image

    from mlops.inference.detector import OnnxDetector

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    tensor, _ = OnnxDetector(onnx_path).preprocess(np.asarray(Image.open(image_path).convert("RGB")))
    tensor = np.ascontiguousarray(np.repeat(tensor, batch, axis=0))
    return lambda: session.run(None, {input_name: tensor})


def measure_cases(cases: dict[str, Callable[[], object]], *, runs: int, blocks: dict[str, int], busy: list[int]):
    """Rounds of one block per case, in a rotating order; each block starts once `busy` is idle.

    A block's first call is the idle figure (the server has written the previous answer's log and
    its threads are asleep); the calls after it, each sent as soon as the previous answer arrived,
    are the back-to-back figure. A case may return figures of its own (the server's latency_ms),
    kept the same way.
    """
    for case in cases.values():
        for _ in range(2):
            case()
    phases = ("back_to_back", "idle")
    times: dict[str, dict[str, list[float]]] = {phase: {key: [] for key in cases} for phase in phases}
    extras: dict[str, dict[str, dict[str, list[float]]]] = {phase: {} for phase in phases}
    order = list(cases)
    for round_index in range(runs):
        shift = round_index % len(order)
        for key in order[shift:] + order[:shift]:
            settle(busy)
            for index in range(blocks[key]):
                phase = "idle" if index == 0 else "back_to_back"
                getattr(cases[key], "prepare", lambda: None)()  # untimed: see log_settled_case
                began = time.perf_counter()
                figures = cases[key]()
                times[phase][key].append((time.perf_counter() - began) * 1000)
                for name, value in figures.items() if isinstance(figures, dict) else ():
                    extras[phase].setdefault(key, {}).setdefault(name, []).append(value)
    return {
        phase: {
            "latency_ms": {key: stats(values) for key, values in times[phase].items()},
            "reported_ms": {
                key: {name: stats(values) for name, values in figures.items()} for key, figures in extras[phase].items()
            },
        }
        for phase in phases
    }


def api_case(http, base: str, jpeg: bytes, model: str) -> Callable[[], dict]:
    """Case (c): one upload to POST /api/v1/detections/ for `model`; the server's own timings kept."""

    def request() -> dict:
        response = post_image(http, base, jpeg, data={"conf": "0.25", "model": model})
        response.raise_for_status()
        body = response.json()
        return {"server_latency_ms": body["latency_ms"], "model_predict_ms": body["inference_ms"]}

    return request


def log_settled_case(http, base: str, jpeg: bytes, model: str) -> Callable[[], dict]:
    """Case (c) with the log out of the way: before each request, wait (untimed: the case's
    `prepare`) until the server has written the rest of the previous answer's prediction log (the
    image's descriptors), so no request overlaps it. Against plain back-to-back (c) this is what
    the log written after an answer costs the next answer."""
    from backend.detection.models import Detection

    pending: list[str] = []

    def request() -> dict:
        response = post_image(http, base, jpeg, data={"conf": "0.25", "model": model})
        response.raise_for_status()
        body = response.json()
        pending.append(body["id"])
        return {"server_latency_ms": body["latency_ms"], "model_predict_ms": body["inference_ms"]}

    def prepare() -> None:
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            if Detection.objects.filter(pk=pending[-1]).exclude(features={}).exists():
                pending.clear()
            else:
                time.sleep(0.001)

    request.prepare = prepare
    return request


def alternating(
    raw_run, raw_count: int, window: Callable[[], float], per_window: int, *, rounds: int, busy: list[int]
) -> dict:
    """Images/s of `window()` (which handles `per_window` images and returns its own seconds) against
    back-to-back raw runs: `rounds` of `raw_count` raw runs, then one window, each once `busy` is idle,
    so that load from elsewhere hits both alike."""
    raw_seconds = window_seconds = 0.0
    for _ in range(rounds):
        settle(busy)
        started = time.perf_counter()
        for _ in range(raw_count):
            raw_run()
        raw_seconds += time.perf_counter() - started
        settle(busy)
        window_seconds += window()
    raw_rate = rounds * raw_count / raw_seconds
    rate = rounds * per_window / window_seconds
    return {"images_per_s": rate, "raw_images_per_s": raw_rate, "share_of_raw": rate / raw_rate}


def throughput(base: str, jpeg: bytes, raw_run, *, clients: int, rounds: int, per_round: int, busy: list[int]) -> dict:
    """Images/s of the API at `clients` concurrency against back-to-back raw session.run (1000/a).

    Windows of each alternate, so that load from other processes on the machine hits both alike.
    """
    import requests

    from backend.detection.models import Detection

    sessions = [requests.Session() for _ in range(clients)]
    failures: list[int] = []
    lock = threading.Lock()

    def http_window() -> float:
        counter = iter(range(per_round))

        def client(index: int) -> None:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                response = post_image(sessions[index], base, jpeg)
                if response.status_code != 201:
                    failures.append(response.status_code)

        logged = Detection.objects.count() + per_round
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        # The window ends when the server has also written the prediction log of its last answers.
        deadline = time.monotonic() + 60
        while Detection.objects.count() < logged - len(failures) and time.monotonic() < deadline:
            time.sleep(0.002)
        return time.perf_counter() - started

    rates = alternating(raw_run, max(4, per_round // 3), http_window, per_round, rounds=rounds, busy=busy)
    return {"clients": clients, "requests": rounds * per_round, **rates, "failed": len(failures)}


def batch_zip(images: list[Path], count: int) -> bytes:
    """A zip of `count` JPEGs, the given images in turn (stored: JPEGs do not shrink)."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            source = images[index % len(images)]
            archive.writestr(f"photos/{index:04d}{source.suffix}", source.read_bytes())
    return buffer.getvalue()


def batch_rate(base: str, archive: bytes, count: int, raw_run, *, rounds: int, busy: list[int]) -> dict:
    """A zip of `count` images through POST /api/v1/batches/ on the batch worker, upload to the batch's
    finish, in windows alternating with back-to-back raw session.run (1000/a images/s)."""
    import requests

    from backend.detection.models import Batch

    failed: list[str] = []

    def batch_window() -> float:
        started = time.perf_counter()
        response = requests.post(
            f"{base}/api/v1/batches/", files={"files": ("photos.zip", archive, "application/zip")}, timeout=300
        )
        response.raise_for_status()
        batch_id = response.json()["id"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            batch = Batch.objects.get(pk=batch_id)
            if batch.status in (Batch.Status.SUCCEEDED, Batch.Status.FAILED):
                break
            time.sleep(0.01)
        else:
            raise RuntimeError(f"batch {batch_id} did not finish in time")
        if batch.status != Batch.Status.SUCCEEDED or batch.failed:
            failed.append(batch_id)
        return time.perf_counter() - started

    rates = alternating(raw_run, max(4, count // 10), batch_window, count, rounds=rounds, busy=busy)
    return {"images": count, "rounds": rounds, **rates, "failed_batches": len(failed)}


def hot_swap_run(base: str, jpeg: bytes, models: dict, *, requests_total: int, cycles: int, clients: int) -> dict:
    """N requests at `clients` concurrency while promote / rollback alternate `cycles` times each."""
    import requests

    from backend.registry.models import RegisteredModel
    from backend.registry.services import promote_version, rollback_model

    first, second = models["detectors"]
    model = RegisteredModel.objects.get(name=DETECTOR)
    results: list[tuple[float, float, int, int | None, str]] = []
    changes: list[tuple[float, float, int]] = []
    counter = iter(range(requests_total))
    lock = threading.Lock()
    done = threading.Event()

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            started = time.monotonic()
            try:
                response = post_image(session, base, jpeg)
                status = response.status_code
                version = response.json()["model"]["version"] if status == 201 else None
                detail = "" if status == 201 else response.text[:300]
            except requests.RequestException as exc:
                status, version, detail = -1, None, repr(exc)
            results.append((started, time.monotonic(), status, version, detail))

    def promoter(pause: float) -> None:
        for _ in range(cycles):
            for action in ("promote", "rollback"):
                time.sleep(pause)
                started = time.monotonic()
                if action == "promote":
                    second.refresh_from_db()
                    deployment = promote_version(second, reason="bench")
                else:
                    deployment = rollback_model(model, reason="bench")
                changes.append((started, time.monotonic(), deployment.to_version.version))
        done.set()

    started = time.perf_counter()
    # Pace the changes so that all of them land while requests are still being answered.
    estimate = requests_total / max(1.0, clients * 1.0) * 0.15
    swapper = threading.Thread(target=promoter, args=(max(0.3, estimate / (2 * cycles + 2)),))
    swapper.start()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    swapper.join()
    elapsed = time.perf_counter() - started
    end = time.monotonic()

    windows: dict[int, list[tuple[float, float]]] = {}
    current, since = first.version, float("-inf")
    for change_started, change_finished, version in changes:
        windows.setdefault(current, []).append((since, change_finished))
        current, since = version, change_started
    windows.setdefault(current, []).append((since, end))
    answered = [r for r in results if r[2] == 201]
    outside = [r for r in answered if not any(lo <= r[1] and r[0] <= hi for lo, hi in windows.get(r[3], []))]
    last_request = max(r[0] for r in results)
    return {
        "requests": len(results),
        "clients": clients,
        "changes": len(changes),
        "changes_before_last_request": sum(1 for c in changes if c[1] <= last_request),
        "failed": len(results) - len(answered),
        "failures": [r[4] for r in results if r[2] != 201][:5],
        "versions_seen": sorted({r[3] for r in answered}),
        "answers_by_version": {str(v): sum(1 for r in answered if r[3] == v) for v in sorted({r[3] for r in answered})},
        "answers_outside_production": len(outside),
        "every_answer_from_production": not outside,
        "seconds": elapsed,
    }


# -- peers ------------------------------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    found = children_of(pid)
    for child in list(found):
        found.extend(descendants(child))
    return found


def start_peer(env: Environment, name: str, command: list[str], extra_env: dict[str, str]) -> subprocess.Popen:
    log = (env.work / f"peer-{name}.log").open("wb")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **extra_env, "PATH": path}, stdout=log, stderr=subprocess.STDOUT
    )
    env.processes.append(process)
    return process


def stop_peer(env: Environment, process: subprocess.Popen) -> None:
    """Stop a peer and whatever it started (`mlflow models serve` runs its server as a child)."""
    children = descendants(process.pid)
    env.stop(process)
    for pid in children:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            continue


def wait_for_peer(name: str, process: subprocess.Popen, call: Callable[[], object], timeout: float = 180) -> None:
    """Call until the peer answers (it is starting); its own error once it is listening."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"peer {name} exited with {process.returncode}")
        try:
            call()
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"peer {name} did not answer in {timeout}s")


def ultralytics_peer(env: Environment, weights: Path, jpeg: bytes) -> tuple[subprocess.Popen, Callable[[], None]]:
    """Peer (i): FastAPI + Ultralytics YOLO(.pt).predict(imgsz=640) in uvicorn (bench/peers/ultralytics_fastapi.py)."""
    import requests

    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.peers.ultralytics_fastapi:app", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    process = start_peer(env, "ultralytics", command, {"PEER_WEIGHTS": str(weights)})
    http = requests.Session()
    url = f"http://127.0.0.1:{port}/predict?conf=0.25&imgsz=640"

    def call() -> None:
        response = http.post(url, data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=120)
        response.raise_for_status()
        response.json()

    wait_for_peer("ultralytics", process, call)
    return process, call


def mlflow_peer(env: Environment, onnx_path: Path, version: int, jpeg: bytes):
    """Peer (ii): `mlflow models serve` of the registered version, fed the tensor its signature declares.

    Timed from the JPEG bytes, as for our API: decode, letterbox (the same rectangle the API runs),
    JSON encoding, the request, and the answer's JSON (the raw network output: MLflow does no NMS).
    """
    import requests
    from django.conf import settings

    from bench.peers.mlflow_scoring import input_signature, request_body, serve_command
    from mlops.inference.detector import OnnxDetector

    model_uri = f"models:/{DETECTOR}/{version}"
    signature = input_signature(model_uri)
    port = free_port()
    process = start_peer(
        env,
        "mlflow",
        serve_command(model_uri, port),
        {"MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI, "MLFLOW_REGISTRY_URI": settings.MLFLOW_REGISTRY_URI},
    )
    preprocess = OnnxDetector(onnx_path).preprocess
    http = requests.Session()
    url = f"http://127.0.0.1:{port}/invocations"

    def call() -> dict:
        began = time.perf_counter()
        body = request_body(jpeg, preprocess, signature)
        posted = time.perf_counter()
        response = http.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=300)
        response.raise_for_status()
        response.json()
        return {"client_encode_ms": (posted - began) * 1000, "request_ms": (time.perf_counter() - posted) * 1000}

    wait_for_peer("mlflow", process, call, timeout=300)
    body_bytes = len(request_body(jpeg, preprocess, signature))
    return process, call, {"model_uri": model_uri, "signature_inputs": signature, "body_bytes": body_bytes}


# -- the run ------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    import importlib.util

    import requests
    from ultralytics import YOLO

    from mlops.tests.classifier_support import photo_jpeg

    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    env = Environment(work)
    try:
        assets = Path(importlib.util.find_spec("ultralytics").origin).parent / "assets"
        image_path = assets / "bus.jpg"
        jpeg = image_path.read_bytes()
        photo = photo_jpeg(*PHOTO_SIZE)
        models = register_models(work, args.arch, [image_path, assets / "zidane.jpg"])
        load_before = os.getloadavg()
        startup = start_and_memory(env, jpeg, models["record"])
        process, base, _ = env.gunicorn(workers=args.workers, threads=args.threads)
        wait_for_answer(base, jpeg, process)
        peers: dict[str, subprocess.Popen] = {}
        cases: dict[str, Callable[[], object]] = {}
        peer_info = {}
        if not args.no_peers:
            peers["ultralytics_fastapi"], cases["peer_ultralytics_fastapi"] = ultralytics_peer(
                env, models["weights"], jpeg
            )
            peers["mlflow_serve"], cases["peer_mlflow_serve"], peer_info = mlflow_peer(
                env, models["onnx"], models["detectors"][0].version, jpeg
            )
        ultralytics = YOLO(str(models["weights"]), task="detect")
        http = requests.Session()
        raw_fixed = raw_session_run(models["fixed_onnx"], image_path)
        raw_dynamic = raw_session_run(models["onnx"], image_path)
        cases = {
            "a_fixed": raw_fixed,
            "a_dynamic": raw_dynamic,
            "a_fixed_openvino": raw_openvino_run(models["fixed_onnx"], image_path),
            "a_rectangle": raw_rectangle_run(models["onnx"], image_path, 1),
            "a_rectangle_batch4": raw_rectangle_run(models["onnx"], image_path, 4),
            "b_ultralytics_pt": lambda: ultralytics.predict(str(image_path), imgsz=640, conf=0.25, verbose=False),
            "c_fixed": api_case(http, base, jpeg, FIXED_DETECTOR),
            "c_dynamic": api_case(http, base, jpeg, DETECTOR),
            "c_photo": api_case(http, base, photo, DETECTOR),
            "c_log_settled": log_settled_case(http, base, jpeg, DETECTOR),
            **cases,
        }
        blocks = {key: args.peer_block if key == "peer_mlflow_serve" else args.block for key in cases}
        busy = [
            os.getpid(),
            *descendants(process.pid),
            *(pid for p in peers.values() for pid in (p.pid, *descendants(p.pid))),
        ]
        measured = measure_cases(cases, runs=args.runs, blocks=blocks, busy=busy)
        for peer in peers.values():
            stop_peer(env, peer)
        busy = [os.getpid(), *descendants(process.pid)]
        concurrent = [
            throughput(
                base,
                jpeg,
                raw_dynamic,
                clients=clients,
                rounds=3,
                per_round=max(3 * clients, args.throughput_requests // 3),
                busy=busy,
            )
            for clients in (4, 16)
        ]
        from tests.helpers import wait_for_celery_worker  # prometheus_client: after Django's settings

        worker = env.worker()
        wait_for_celery_worker(worker, env.work / "worker.log")
        archive = batch_zip([image_path, assets / "zidane.jpg"], args.batch_images)
        batches = batch_rate(
            base, archive, args.batch_images, raw_dynamic, rounds=2,
            busy=[*busy, worker.pid, *descendants(worker.pid)],
        )  # fmt: skip
        env.stop(worker)
        swap = hot_swap_run(base, jpeg, models, requests_total=args.swap_requests, cycles=args.swaps, clients=4)
        env.stop(process)
        load_after = os.getloadavg()
    finally:
        env.close()
        shutil.rmtree(work, ignore_errors=True)

    def figures(phase: str) -> dict:
        p50 = {key: value["p50"] for key, value in measured[phase]["latency_ms"].items()}
        ratios = {
            "fixed_c_over_a": p50["c_fixed"] / p50["a_fixed"],
            "dynamic_c_over_a": p50["c_dynamic"] / p50["a_dynamic"],
            "dynamic_c_over_b": p50["c_dynamic"] / p50["b_ultralytics_pt"],
            "photo_c_over_a": p50["c_photo"] / p50["a_dynamic"],
            "log_overlapping_over_settled": p50["c_dynamic"] / p50["c_log_settled"],
            "batch4_over_batch1_per_image": p50["a_rectangle_batch4"] / 4 / p50["a_rectangle"],
            "fixed_c_over_openvino": p50["c_fixed"] / p50["a_fixed_openvino"],
            "openvino_over_a": p50["a_fixed_openvino"] / p50["a_fixed"],
        }
        for key in ("peer_ultralytics_fastapi", "peer_mlflow_serve"):
            if key in p50:
                ratios[f"dynamic_c_over_{key}"] = p50["c_dynamic"] / p50[key]
        return {**measured[phase], "ratios_p50": ratios}

    back_to_back, idle = figures("back_to_back"), figures("idle")
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "python": sys.version.split()[0],
        },
        "server": {
            "command": "Procfile web",
            "workers": args.workers,
            "threads": args.threads,
            "engine": serving_engine(),
        },
        "model": {
            "arch": args.arch,
            "imgsz": 640,
            "image": str(image_path),
            "image_bytes": len(jpeg),
            "photo": {"size": list(PHOTO_SIZE), "bytes": len(photo)},
        },
        "runs": args.runs,
        "blocks": blocks,
        "back_to_back": back_to_back,
        "idle": idle,
        "mlflow_serve": peer_info,
        "throughput": [
            {**t, "target_images_per_s": TARGETS["throughput_share"] * t["raw_images_per_s"]} for t in concurrent
        ],
        "batches": {**batches, "target_images_per_s": TARGETS["batch_share"] * batches["raw_images_per_s"]},
        "hot_swap": swap,
        "serving_process": startup,
        "targets": TARGETS,
    }
    ratios = back_to_back["ratios_p50"]
    report["met"] = {
        **{key: ratios[key] <= TARGETS[key] for key in TIMED_RATIOS},
        **{f"throughput_{t['clients']}_clients": t["share_of_raw"] >= TARGETS["throughput_share"] for t in concurrent},
        "batch_rate": batches["share_of_raw"] >= TARGETS["batch_share"] and not batches["failed_batches"],
        "hot_swap_no_failures": swap["failed"] == 0,
        "hot_swap_versions": swap["every_answer_from_production"],
        "rss": startup["rss_mb"] <= TARGETS["rss_mb"],
        "start": startup["start_to_first_answer_s"] <= TARGETS["start_s"],
    }
    return report


LABELS = {
    "a_fixed": "(a) raw session.run 1x3x640x640, fixed export",
    "a_dynamic": "(a) raw session.run 1x3x640x640, dynamic export",
    "a_fixed_openvino": "(a') raw OpenVINO infer 1x3x640x640, fixed export",
    "a_rectangle": "raw session.run 1x3x480x640 (bus.jpg's rectangle)",
    "a_rectangle_batch4": "raw session.run 4x3x480x640 (per call)",
    "b_ultralytics_pt": "(b) Ultralytics YOLO(.pt).predict imgsz 640",
    "c_fixed": "(c) our API, fixed-640 export, bus.jpg",
    "c_dynamic": "(c) our API, dynamic export, bus.jpg",
    "c_photo": "(c) our API, dynamic export, 4000x3000 JPEG",
    "c_log_settled": "(c) dynamic, bus.jpg, previous log written first",
    "peer_ultralytics_fastapi": "peer: FastAPI + Ultralytics .pt, bus.jpg",
    "peer_mlflow_serve": "peer: mlflow models serve, bus.jpg",
}
RATIO_LABELS = {
    "fixed_c_over_a": "fixed-640 c/a",
    "dynamic_c_over_a": "dynamic bus.jpg c/a",
    "dynamic_c_over_b": "dynamic bus.jpg c/b",
    "photo_c_over_a": "12 MP photo c/a",
    "log_overlapping_over_settled": "log after answer: on / out of the way",
    "batch4_over_batch1_per_image": "raw batch of 4 / batch of 1, per image",
    "fixed_c_over_openvino": "fixed-640 c / raw OpenVINO",
    "openvino_over_a": "raw OpenVINO / raw ONNX Runtime (a')/(a)",
    "dynamic_c_over_peer_ultralytics_fastapi": "dynamic c / FastAPI+Ultralytics peer",
    "dynamic_c_over_peer_mlflow_serve": "dynamic c / mlflow models serve peer",
}


def print_report(report: dict) -> None:
    machine = report["machine"]
    mark = {True: "ok", False: "MISSED"}
    met = report["met"]
    print(
        f"\nHTTP serving bench  {report['when']}  cpus={machine['cpus']}  load avg "
        f"{machine['load_average_before'][0]:.2f} -> {machine['load_average_after'][0]:.2f}  "
        f"gunicorn {report['server']['workers']} workers x {report['server']['threads']} threads, "
        f"image models on {report['server']['engine']}"
    )
    model = report["model"]
    print(
        f"model {model['arch']} at 640, bus.jpg ({model['image_bytes']} bytes), photo "
        f"{model['photo']['size'][0]}x{model['photo']['size'][1]} ({model['photo']['bytes']} bytes); "
        f"{report['runs']} rounds, blocks {report['blocks']}"
    )
    for phase, title in (
        ("back_to_back", "BACK TO BACK (headline): each request sent as soon as the previous answer arrived"),
        ("idle", "IDLE (second figure): each call once the server and this process are idle"),
    ):
        figures = report[phase]
        print(f"\n{title}\n{'case':<48}{'p50 ms':>10}{'p90 ms':>10}{'n':>6}   server latency_ms / model predict p50")
        for key, label in LABELS.items():
            if key not in figures["latency_ms"]:
                continue
            value = figures["latency_ms"][key]
            reported = figures["reported_ms"].get(key, {})
            extra = "   " + " / ".join(f"{v['p50']:.1f}" for v in reported.values()) if reported else ""
            print(f"{label:<48}{value['p50']:>10.1f}{value['p90']:>10.1f}{value['n']:>6}{extra}")
        for key, value in figures["ratios_p50"].items():
            target = TARGETS.get(key)
            verdict = f"(target <= {target})  {mark[value <= target]}" if target else ""
            print(f"  {RATIO_LABELS[key]:<42} {value:6.3f}  {verdict}")
    if report["mlflow_serve"]:
        info = report["mlflow_serve"]
        print(
            f"\nmlflow models serve {info['model_uri']}: signature {info['signature_inputs']}, "
            f"body {info['body_bytes']} bytes"
        )
    print()
    for t in report["throughput"]:
        verdict = mark[met[f"throughput_{t['clients']}_clients"]]
        print(
            f"throughput, {t['clients']} clients: {t['images_per_s']:.2f} images/s vs back-to-back (a) "
            f"{t['raw_images_per_s']:.2f} -> {t['share_of_raw']:.2f} (target >= {TARGETS['throughput_share']} x 1000/a "
            f"= {t['target_images_per_s']:.2f} images/s)  {verdict}; failed {t['failed']}"
        )
    b = report["batches"]
    print(
        f"batches: a zip of {b['images']} images (bus.jpg, zidane.jpg) on one batch worker: {b['images_per_s']:.2f} "
        f"images/s vs back-to-back (a) {b['raw_images_per_s']:.2f} -> {b['share_of_raw']:.2f} (target >= "
        f"{TARGETS['batch_share']})  {mark[met['batch_rate']]}; failed batches {b['failed_batches']}"
    )
    s = report["hot_swap"]
    print(
        f"hot swap: {s['requests']} requests at {s['clients']} clients, {s['changes']} promotions/rollbacks "
        f"({s['changes_before_last_request']} before the last request): failed {s['failed']} "
        f"{mark[met['hot_swap_no_failures']]}; answers outside production {s['answers_outside_production']} "
        f"{mark[met['hot_swap_versions']]}; answers by version {s['answers_by_version']}"
    )
    p = report["serving_process"]
    print(
        f"serving process (1 worker, both models loaded): RSS {p['rss_mb']:.0f} MB (peak {p['peak_rss_mb']:.0f}, "
        f"anon {p['anon_mb']:.0f}) {mark[met['rss']]}; start to first answer {p['start_to_first_answer_s']:.2f} s "
        f"{mark[met['start']]} (app imported {p['app_ready_s']:.2f} s, then model load + first detection "
        f"{p['then_first_detection_s']:.2f} s); heavy libraries mapped: {p['heavy_libraries_mapped'] or 'none'}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_http", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="yolo11n", choices=["yolo11n", "yolo26n"])
    parser.add_argument("--runs", type=int, default=15, help="rounds of one block per case")
    parser.add_argument("--block", type=int, default=6, help="calls per block: 1 idle, then back to back")
    parser.add_argument("--peer-block", type=int, default=2, help="calls per block for the mlflow peer (slow)")
    parser.add_argument("--no-peers", action="store_true", help="skip the FastAPI + Ultralytics and MLflow servers")
    parser.add_argument("--throughput-requests", type=int, default=60, help="per client count, in 3 windows")
    parser.add_argument("--batch-images", type=int, default=200, help="images in the zip of the batch case")
    parser.add_argument("--swap-requests", type=int, default=300)
    parser.add_argument("--swaps", type=int, default=10, help="promote + rollback cycles during the swap run")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (Procfile default 1)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (Procfile default 8)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    report = run(args)
    print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"http-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nresults written to {out.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
