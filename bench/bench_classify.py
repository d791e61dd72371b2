"""Classification serving benchmark: our API end to end on gunicorn, against raw ONNX Runtime and Ultralytics.

    python -m bench classify [--runs 15] [--block 5] [--no-large]

Builds a yolo11n-cls from yolo11n-cls.yaml at imgsz 224 with three classes (mlops.tests.classifier_support:
batch-norm statistics from real photos and a scaled head, so that answers differ between images; untrained
otherwise, which is fine for timing), exports it to a fixed 224x224 ONNX with Ultralytics, registers and
promotes it as the default classifier through the registry in a temporary VAR_DIR (bench_http's
Environment: own Redis, SQLite, MLflow store), starts gunicorn from the Procfile's `web` line and
measures, on each input, in the same run, round by round in a rotating order:
  (a)      raw ONNX Runtime session.run (default options) on the image's 1x3x224x224 input tensor
  (b)      Ultralytics YOLO(.pt).predict(file, imgsz=224) of the same weights
  (c)      POST /api/v1/classifications/ end to end, one client, back to back (the headline)
  (d)      ours in this process, no HTTP: decode_image + OnnxClassifier.predict, by stage, and the same
           preprocessing with Pillow's whole resize (what the two-pass crop must equal, and beat)
  (c_idle) the request of (c) once the server and this process are idle (bench_http's settle), one per round
(a), (b), (c), (d) run in blocks of --block calls back to back, each block once the processes are idle.
Inputs: a 224x224 JPEG (nothing to resize), Ultralytics' bus.jpg (810x1080, the detection benches'
photo) and a generated 4000x3000 camera JPEG (12 MP; --no-large skips it). Prints p50s, the ratios c/a
(target <= 1.15) and c/b (target <= 0.5) per input and how busy the host was (other processes' CPU
during the run); writes JSON to bench/results/. Absolute times depend on the machine and its load:
compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.bench_http import ROOT, Environment, children_of, cpu_seconds, post_image, settle, stats, wait_for_answer
from bench.bench_shadow import host_busy_seconds

RESULTS = ROOT / "bench" / "results"
CLASSIFIER = "bench-classifier"
URL = "/api/v1/classifications/"
IMGSZ = 224
CAPS = {"max_pixels": 40_000_000, "max_side": 12_000}
TARGETS = {"c_over_a": 1.15, "c_over_b": 0.5}
# Other processes using more than this share of one core, on average over an input's measurement,
# make the figures "busy host" figures (the ratios hold better than the absolute times, still move).
BUSY_FOREIGN_CORES = 0.25


# -- inputs and model -------------------------------------------------------------------------------------------
def make_inputs(work: Path, *, large: bool) -> dict[str, Path]:
    """The JPEG files, by name: 224x224, bus.jpg and (large) a 4000x3000 camera photo."""
    from PIL import Image

    from mlops.tests.classifier_support import asset, photo_jpeg

    bus = asset("bus.jpg")
    with Image.open(bus) as image:
        rgb = image.convert("RGB")
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    square = rgb.crop((left, top, left + side, top + side)).resize((IMGSZ, IMGSZ), Image.LANCZOS)
    inputs = {"224x224": work / "square-224.jpg", "bus.jpg": bus}
    square.save(inputs["224x224"], format="JPEG", quality=95)
    if large:
        inputs["12mp"] = work / "photo-4000x3000.jpg"
        inputs["12mp"].write_bytes(photo_jpeg(4000, 3000))
    return inputs


def register_classifier(work: Path) -> dict:
    """The yolo11n-cls at 224 (.pt and ONNX), registered and promoted as the default classifier."""
    from backend.registry.services import promote_version, register_from_files
    from mlops.tests.classifier_support import NAMES, build_classifier, export_classifier

    weights = build_classifier(work, imgsz=IMGSZ)
    onnx_path = export_classifier(weights, work / "onnx" / f"classifier-{IMGSZ}.onnx", imgsz=IMGSZ)
    metadata = {"class_names": list(NAMES), "imgsz": IMGSZ, "architecture": "yolo11n-cls", "task": "classify"}
    files = {"weights": weights, "onnx": onnx_path}
    version = register_from_files(CLASSIFIER, "classification", files, metadata=metadata)
    promote_version(version, reason="bench")
    return {"weights": weights, "onnx": onnx_path, "version": version.version}


# -- cases --------------------------------------------------------------------------------------------------------
def whole_resize_preprocess(classifier, rgb, out: np.ndarray) -> np.ndarray:
    """OnnxClassifier.preprocess as it was before the two-pass crop: Pillow's whole resize, then the crop
    (the reference the two-pass crop must equal), into `out` as preprocess does into its buffer."""
    from PIL import Image

    from mlops.inference.classifier import crop_geometry

    crop = crop_geometry(rgb.width, rgb.height, *classifier.input_size)
    box = (crop.left, crop.top, crop.left + crop.width, crop.top + crop.height)
    size = (crop.resized_width, crop.resized_height)
    pixels = np.asarray(rgb.resize(size, Image.BILINEAR).crop(box) if size != rgb.size else rgb.crop(box))
    np.divide(pixels.transpose(2, 0, 1), np.float32(255), out=out[0], casting="unsafe")
    return out


def measure_input(path: Path, *, base: str, models: dict, runs: int, block: int, busy: list[int]) -> dict:
    """Rounds of blocks of (a), (b), (c), (d) in a rotating order, and one idle (c) per round."""
    import onnxruntime as ort
    import requests
    from ultralytics import YOLO

    from mlops.inference.classifier import OnnxClassifier
    from mlops.inference.images import decode_image

    jpeg = path.read_bytes()
    rgb = decode_image(jpeg, **CAPS)
    ours = OnnxClassifier(models["onnx"])  # sleeping threads: spinning ones would steal the next case's CPU
    tensor = np.ascontiguousarray(ours.preprocess(rgb).copy())
    assert tensor.shape == (1, 3, IMGSZ, IMGSZ)
    reference = np.empty_like(tensor)
    assert np.array_equal(tensor, whole_resize_preprocess(ours, rgb, reference)), "two-pass crop != Pillow's resize"
    # ONNX Runtime's default options: the library called directly, as a user would (bench_http's (a)).
    session = ort.InferenceSession(str(models["onnx"]), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    ultralytics = YOLO(str(models["weights"]), task="classify")
    http = requests.Session()
    server_ms: list[float] = []
    inference_ms: list[float] = []
    stages: dict[str, list[float]] = {k: [] for k in ("decode", "preprocess", "run", "postprocess")}
    # OnnxClassifier.preprocess against the whole-resize reference, alternately on the decoded image.
    preprocessing: dict[str, list[float]] = {"two_pass_crop": [], "whole_resize": []}

    def request() -> None:
        response = post_image(http, base, jpeg, path=URL, data={})
        response.raise_for_status()
        body = response.json()
        server_ms.append(body["latency_ms"])
        inference_ms.append(body["inference_ms"])

    def in_process() -> None:
        started = time.perf_counter()
        decoded = decode_image(jpeg, **CAPS)
        stages["decode"].append((time.perf_counter() - started) * 1000)
        result = ours.predict(decoded)
        stages["preprocess"].append(result.preprocess_ms)
        stages["run"].append(result.run_ms)
        stages["postprocess"].append(result.postprocess_ms)

    cases: dict[str, Callable[[], object]] = {
        "a_session_run": lambda: session.run(None, {input_name: tensor}),
        "b_ultralytics_pt": lambda: ultralytics.predict(str(path), imgsz=IMGSZ, verbose=False),
        "c_http_api": request,
        "d_ours_in_process": in_process,
    }
    for case in cases.values():
        for _ in range(3):
            case()
    server_ms.clear()
    inference_ms.clear()
    for values in stages.values():
        values.clear()
    times: dict[str, list[float]] = {key: [] for key in (*cases, "c_idle")}
    idle_server_ms: list[float] = []
    order = list(cases)
    load_before = os.getloadavg()
    host_before, ours_before, started = host_busy_seconds(), cpu_seconds(busy), time.perf_counter()
    for round_index in range(runs):
        shift = round_index % len(order)
        for key in order[shift:] + order[:shift]:
            settle(busy)
            for _ in range(block):
                began = time.perf_counter()
                cases[key]()
                times[key].append((time.perf_counter() - began) * 1000)
        settle(busy)
        began = time.perf_counter()
        request()
        times["c_idle"].append((time.perf_counter() - began) * 1000)
        idle_server_ms.append(server_ms.pop())
        inference_ms.pop()
        settle(busy)
        for index in range(2 * block):
            began = time.perf_counter()
            if index % 2 == round_index % 2:
                ours.preprocess(rgb)
                preprocessing["two_pass_crop"].append((time.perf_counter() - began) * 1000)
            else:
                whole_resize_preprocess(ours, rgb, reference)
                preprocessing["whole_resize"].append((time.perf_counter() - began) * 1000)
    elapsed = time.perf_counter() - started
    foreign = ((host_busy_seconds() - host_before) - (cpu_seconds(busy) - ours_before)) / elapsed

    latency = {key: stats(values) for key, values in times.items()}
    a, b, c, c_idle = (latency[k]["p50"] for k in ("a_session_run", "b_ultralytics_pt", "c_http_api", "c_idle"))
    stage_stats = {key: stats(values) for key, values in stages.items()}
    preprocess_stats = {key: stats(values) for key, values in preprocessing.items()}
    predict_ms = np.add(np.add(stages["preprocess"], stages["run"]), stages["postprocess"])
    predict_p50 = float(np.percentile(predict_ms, 50))
    ratios = {
        "c_over_a": c / a,
        "c_over_b": c / b,
        "c_idle_over_a": c_idle / a,
        "c_idle_over_b": c_idle / b,
        "d_over_a": latency["d_ours_in_process"]["p50"] / a,
        "predict_over_a": predict_p50 / a,
        "preprocess_over_whole_resize": preprocess_stats["two_pass_crop"]["p50"]
        / preprocess_stats["whole_resize"]["p50"],
    }
    server, predict, decode = (
        stats(server_ms)["p50"], stats(inference_ms)["p50"], stage_stats["decode"]["p50"]
    )  # fmt: skip
    # Where a back-to-back request's time goes (p50s, so the parts only roughly add up).
    where = {
        "http_and_framework_outside_the_view": c - server,
        "decode_in_process": decode,
        "predict": predict,
        "rest_of_the_view": server - predict - decode,  # parsing the upload, storing it, the row, metrics
    }
    return {
        "path": str(path),
        "size": list(rgb.size),
        "bytes": len(jpeg),
        "latency_ms": latency,
        "c_server_side_ms": stats(server_ms),
        "c_inference_ms": stats(inference_ms),
        "c_idle_server_side_ms": stats(idle_server_ms),
        "d_stages_ms": stage_stats,
        "preprocess_ms": preprocess_stats,
        "c_where_ms": where,
        "ratios_p50": ratios,
        "met": {key: ratios[key] <= target for key, target in TARGETS.items()},
        "host": {
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "foreign_cores": foreign,
            "seconds": elapsed,
        },
    }


# -- the run ------------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    import onnxruntime as ort
    import PIL

    work = Path(tempfile.mkdtemp(prefix="bench-classify-"))
    os.environ["DEFAULT_CLASSIFICATION_MODEL"] = CLASSIFIER  # read by Django's settings, here and in gunicorn
    env = Environment(work)
    results: dict[str, dict] = {}
    try:
        inputs = make_inputs(work, large=not args.no_large)
        models = register_classifier(work)
        process, base, _ = env.gunicorn(workers=args.workers, threads=args.threads)
        for path in inputs.values():
            wait_for_answer(base, path.read_bytes(), process, path=URL, data={})
        # Every process of ours (this one, gunicorn's, Redis): settle() waits for them, the rest is "foreign".
        busy = [os.getpid(), process.pid, *children_of(process.pid), *(p.pid for p in env.processes)]
        for name, path in inputs.items():
            runs = args.runs if name != "12mp" else max(5, args.runs // 3)
            print(f"measuring {name} ({runs} rounds of {args.block})...", flush=True)
            results[name] = measure_input(path, base=base, models=models, runs=runs, block=args.block, busy=busy)
        env.stop(process)
    finally:
        env.close()
        shutil.rmtree(work, ignore_errors=True)

    foreign = max(r["host"]["foreign_cores"] for r in results.values())
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench classify " + " ".join(args.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "pillow": PIL.__version__,
            "onnxruntime": ort.__version__,
            "max_foreign_cores": foreign,
            "busy": foreign > BUSY_FOREIGN_CORES,
        },
        "server": {"command": "Procfile web", "workers": args.workers, "threads": args.threads},
        "model": {"arch": "yolo11n-cls", "imgsz": IMGSZ, "classes": 3, "version": models["version"]},
        "block": args.block,
        "inputs": results,
        "targets": TARGETS,
    }


LABELS = {
    "a_session_run": "(a) raw ONNX Runtime session.run 1x3x224x224",
    "b_ultralytics_pt": "(b) Ultralytics YOLO(.pt).predict imgsz 224",
    "c_http_api": "(c) POST /api/v1/classifications/, back to back",
    "c_idle": "(c_idle) the same, on an idle server",
    "d_ours_in_process": "(d) ours in process: decode + predict",
}


def print_report(report: dict) -> None:
    machine = report["machine"]
    state = "BUSY host: other processes used up to" if machine["busy"] else "quiet host: other processes used"
    print(
        f"\nClassification serving bench  {report['when']}  cpus={machine['cpus']}  Pillow {machine['pillow']}  "
        f"onnxruntime {machine['onnxruntime']}\n{state} {machine['max_foreign_cores']:.2f} cores during an input's "
        f"measurement; gunicorn {report['server']['workers']} worker x {report['server']['threads']} threads; "
        f"model yolo11n-cls at {IMGSZ}, 3 classes; blocks of {report['block']}"
    )
    mark = {True: "ok", False: "MISSED"}
    for name, result in report["inputs"].items():
        latency, ratios, host = result["latency_ms"], result["ratios_p50"], result["host"]
        width, height = result["size"]
        print(
            f"\n{name}: {width}x{height}, {result['bytes']} bytes  (load avg {host['load_average_before'][0]:.2f} -> "
            f"{host['load_average_after'][0]:.2f}, other processes {host['foreign_cores']:.2f} cores)"
        )
        print(f"  {'case':<50}{'p50 ms':>9}{'p95 ms':>9}")
        for key, label in LABELS.items():
            print(f"  {label:<50}{latency[key]['p50']:>9.2f}{latency[key]['p95']:>9.2f}")
        d, pre, where = result["d_stages_ms"], result["preprocess_ms"], result["c_where_ms"]
        print(
            f"  (c) server side latency_ms p50 {result['c_server_side_ms']['p50']:.2f} (idle "
            f"{result['c_idle_server_side_ms']['p50']:.2f}), of which predict {result['c_inference_ms']['p50']:.2f}"
        )
        print(
            f"  (d) stages p50: decode {d['decode']['p50']:.2f}  preprocess {d['preprocess']['p50']:.2f}  "
            f"run {d['run']['p50']:.2f}  postprocess {d['postprocess']['p50']:.2f}"
        )
        print(
            f"  preprocess alternately: two-pass crop {pre['two_pass_crop']['p50']:.2f}, Pillow's whole resize "
            f"{pre['whole_resize']['p50']:.2f} -> {ratios['preprocess_over_whole_resize']:.2f}x"
        )
        print(
            "  (c) goes to: HTTP + framework outside the view {:.1f}, decode {:.1f}, predict {:.1f}, rest of the "
            "view (upload parsed and stored, row, metrics) {:.1f}".format(*where.values())
        )
        print(
            f"  c/a {ratios['c_over_a']:.2f} (target <= {TARGETS['c_over_a']}) {mark[result['met']['c_over_a']]}   "
            f"c/b {ratios['c_over_b']:.2f} (target <= {TARGETS['c_over_b']}) {mark[result['met']['c_over_b']]}   "
            f"idle: c/a {ratios['c_idle_over_a']:.2f}, c/b {ratios['c_idle_over_b']:.2f}   "
            f"in process: predict/a {ratios['predict_over_a']:.2f}, d/a {ratios['d_over_a']:.2f}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench classify", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds per input (a third of it for the 12 MP one)")
    parser.add_argument("--block", type=int, default=5, help="calls back to back per case and round")
    parser.add_argument("--no-large", action="store_true", help="skip the 4000x3000 JPEG")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (Procfile default 1)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (Procfile default 8)")
    args = parser.parse_args(argv)
    args.argv = list(argv or [])
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    report = run(args)
    print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"classify-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nresults written to {out.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
