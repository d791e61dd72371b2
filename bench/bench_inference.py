"""Inference benchmark: our ONNX detector against raw ONNX Runtime and Ultralytics, in one run.

    python -m bench.bench_inference [--arch yolo11n|yolo26n] [--imgsz 640] [--runs 30]
    python -m bench.bench_inference --onnx model.onnx [--weights model.pt]

Measured on the same image (Ultralytics' bus.jpg unless --image), interleaved round by round so a
busy machine slows every case alike:
  (a)  raw ONNX Runtime session.run on a 1x3xHxW tensor (default SessionOptions)
  (b)  Ultralytics YOLO(.pt).predict(imgsz) from the image file
  (b') Ultralytics YOLO(.onnx).predict(imgsz) from the image file
  (d)  ours from JPEG bytes: decode_image + OnnxDetector.predict (decode, letterbox, run, NMS)
It prints p50/p95, the ratios d/a and d/b, where (d)'s time goes, a sweep of SessionOptions, and
the RSS and start-up time of a fresh serving process (subprocess) that loads the detector and a
tabular scorer. Results go to bench/results/ as JSON. Only ratios measured in the same run mean
anything: absolute times depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CLASS_BIAS = -8.0
CASE_GAP_S = 0.01  # lets the previous case's ONNX Runtime threads stop spinning before the next starts
HEAVY_MODULES = ("torch", "torchvision", "ultralytics", "xgboost", "mlflow", "sklearn", "pandas", "scipy")

SERVING_PROBE = """
import json, sys, time
started = time.perf_counter()
if {without_cv2!r}:
    sys.modules["cv2"] = None
sys.path.insert(0, {root!r})
from mlops.inference.images import decode_image
from mlops.inference.loader import load_predictor
imported = time.perf_counter()
detector = load_predictor("detection", {{"onnx": {onnx!r}}}, {{}})
loaded = time.perf_counter()
image = decode_image(open({image!r}, "rb").read(), max_pixels=40_000_000, max_side=12_000)
detector.predict(image)
answered = time.perf_counter()
if {tabular!r}:
    scorer = load_predictor("tabular", {{"onnx": {tabular!r}}}, json.loads({tabular_meta!r}))
    scorer.predict([{{f.name: f.typical_value() for f in scorer.features}}])
status = {{}}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
        status[key] = int(value.split()[0]) / 1024
heavy = {heavy!r}
print(json.dumps({{
    "import_s": imported - started, "load_s": loaded - imported, "first_answer_s": answered - loaded,
    "rss_mb": status.get("VmRSS"), "peak_rss_mb": status.get("VmHWM"),
    "anon_mb": status.get("RssAnon"), "file_mb": status.get("RssFile"),
    "heavy_modules": sorted(m for m in heavy if m in sys.modules),
    "cv2_loaded": sys.modules.get("cv2") is not None,
}}))
"""


def stats(values: list[float]) -> dict:
    data = np.asarray(values, dtype=np.float64)
    return {
        "n": int(data.size),
        "p50": float(np.percentile(data, 50)),
        "p95": float(np.percentile(data, 95)),
        "mean": float(data.mean()),
        "min": float(data.min()),
    }


def prepare_environment(work: Path) -> None:
    """Keep Ultralytics' settings, downloads and MLflow callbacks inside the bench's own directory."""
    os.environ["VAR_DIR"] = str(work / "var")
    from mlops.config import MlopsConfig

    MlopsConfig.from_env(ROOT).apply_process_env()


def build_detector(
    arch: str, imgsz: int, work: Path, *, end2end: bool, images: list[Path], dynamic: bool = False
) -> tuple[Path, Path]:
    """A model from the Ultralytics yaml, saved as .pt and exported to a fixed-size ONNX at imgsz.

    An untrained network answers ~0.001 everywhere, which leaves NMS nothing to do. Batch-norm
    statistics taken from the sample images and a raised class bias give it a trained model's
    habits: tens of boxes above 0.25 and thousands of candidates at low thresholds.
    """
    import torch
    from PIL import Image
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO(f"{arch}.yaml")
    pictures = [np.asarray(Image.open(path).convert("RGB").resize((imgsz, imgsz))) for path in images]
    batch = torch.from_numpy(np.stack(pictures + [p[:, ::-1] for p in pictures]).copy()).permute(0, 3, 1, 2) / 255
    for module in model.model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    model.model.train()
    with torch.no_grad():
        model.model(batch.float())
        head = model.model.model[-1]
        for name in ("cv3", "one2one_cv3"):
            for branch in getattr(head, name, None) or []:
                branch[-1].bias.fill_(CLASS_BIAS)
    model.model.eval()
    weights = work / f"{arch}.pt"
    model.save(weights)
    return weights, export(weights, imgsz, work, end2end=end2end, dynamic=dynamic)


def export(weights: Path, imgsz: int, work: Path, *, end2end: bool, dynamic: bool) -> Path:
    """Ultralytics' own ONNX export: fixed imgsz x imgsz input, or any size with dynamic=True."""
    from ultralytics import YOLO

    nms = False if end2end else None
    exported = YOLO(str(weights)).export(format="onnx", imgsz=imgsz, nms=nms, dynamic=dynamic, verbose=False)
    onnx_path = work / f"{weights.stem}-{imgsz}{'-e2e' if end2end else ''}{'-dynamic' if dynamic else ''}.onnx"
    shutil.move(exported, onnx_path)
    return onnx_path


def build_tabular(work: Path) -> tuple[Path, dict]:
    """The breast-cancer XGBoost model converted to ONNX, for the two-model serving process."""
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    from mlops.inference.convert import xgboost_json_to_onnx

    table = load_breast_cancer(as_frame=True)
    model = xgb.XGBClassifier(n_estimators=100, max_depth=4, n_jobs=1).fit(table.data, table.target)
    model.save_model(work / "tabular.json")
    schema = [{"name": n, "dtype": "float", "mean": float(table.data[n].mean())} for n in table.data.columns]
    onnx_path = xgboost_json_to_onnx(work / "tabular.json", len(schema), work / "tabular.onnx")
    return onnx_path, {"class_names": ["malignant", "benign"], "feature_schema": schema}


def interleaved(cases: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, list[float]]:
    for case in cases.values():
        for _ in range(warmup):
            case()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            time.sleep(CASE_GAP_S)
            started = time.perf_counter()
            case()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def session_sweep(onnx_path: Path, tensor: np.ndarray, runs: int) -> dict[str, dict]:
    """Raw session.run p50 under ORT's defaults and under the options serving uses."""
    import onnxruntime as ort

    from mlops.inference.runtime import PROVIDERS, session_options

    configs = {  # default intra-op threads: one per physical core
        "ort_default": ort.SessionOptions(),
        "serving_no_spin": session_options(None),
        "serving_spin": session_options(None, spinning=True),
        "serving_1_thread": session_options(1),
    }
    sessions = {
        name: ort.InferenceSession(str(onnx_path), options, providers=PROVIDERS) for name, options in configs.items()
    }
    name_in = next(iter(sessions.values())).get_inputs()[0].name
    cases = {name: (lambda s=session: s.run(None, {name_in: tensor})) for name, session in sessions.items()}
    return {name: stats(values) for name, values in interleaved(cases, runs, warmup=2).items()}


def serving_process(
    onnx_path: Path, image: Path, tabular: Path | None, tabular_meta: dict, *, without_cv2: bool
) -> dict:
    """Start-up and memory of a fresh serving process, measured from the outside (median of three)."""
    probe = SERVING_PROBE.format(
        root=str(ROOT),
        onnx=str(onnx_path),
        image=str(image),
        tabular=str(tabular) if tabular else "",
        tabular_meta=json.dumps(tabular_meta),
        heavy=HEAVY_MODULES,
        without_cv2=without_cv2,
    )
    reports = []
    for _ in range(3):
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
        report = json.loads(completed.stdout.strip().splitlines()[-1])
        report["start_to_first_answer_s"] = time.perf_counter() - started
        reports.append(report)
    reports.sort(key=lambda r: r["start_to_first_answer_s"])
    return reports[1]


def run(args: argparse.Namespace) -> dict:
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    prepare_environment(work)
    image_path = Path(args.image) if args.image else None
    if image_path is None:
        import importlib.util

        spec = importlib.util.find_spec("ultralytics")
        image_path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "bus.jpg"
    dynamic_path = None
    if args.onnx:
        onnx_path, weights = Path(args.onnx), Path(args.weights) if args.weights else None
        dynamic_path = Path(args.onnx_dynamic) if args.onnx_dynamic else None
    else:
        samples = [image_path, image_path.with_name("zidane.jpg")]
        samples = [path for path in samples if path.is_file()]
        weights, onnx_path = build_detector(args.arch, args.imgsz, work, end2end=args.end2end, images=samples)
        dynamic_path = export(weights, args.imgsz, work, end2end=args.end2end, dynamic=True)

    import onnxruntime as ort
    from ultralytics import YOLO

    from mlops.inference.detector import OnnxDetector
    from mlops.inference.images import decode_image

    jpeg = image_path.read_bytes()
    caps = {"max_pixels": 40_000_000, "max_side": 12_000}
    detector = OnnxDetector(onnx_path, intra_op_threads=args.threads, rect=False)
    rect_detector = OnnxDetector(dynamic_path, intra_op_threads=args.threads) if dynamic_path else None
    height, width = detector.input_size
    imgsz = [height, width]
    # ONNX Runtime's defaults but for spinning, like the serving sessions (and bench_http's (a)): spinning
    # threads would also steal the CPU from whichever case runs next. The sweep below shows both.
    raw_options = ort.SessionOptions()
    raw_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    raw_session = ort.InferenceSession(str(onnx_path), raw_options, providers=["CPUExecutionProvider"])
    input_name = raw_session.get_inputs()[0].name
    tensor, _ = detector.preprocess(np.asarray(Image.open(image_path).convert("RGB")))
    tensor = tensor.copy()
    ultra_onnx = YOLO(str(onnx_path), task="detect")
    ultra_pt = YOLO(str(weights), task="detect") if weights else None
    stages: dict[str, dict[str, list[float]]] = {}

    def ours(model: OnnxDetector, key: str) -> Callable[[], None]:
        record = stages.setdefault(key, {"decode": [], "preprocess": [], "run": [], "postprocess": []})

        def case() -> None:
            started = time.perf_counter()
            decoded = decode_image(jpeg, **caps)
            record["decode"].append((time.perf_counter() - started) * 1000)
            result = model.predict(decoded, conf=args.conf)
            record["preprocess"].append(result.preprocess_ms)
            record["run"].append(result.run_ms)
            record["postprocess"].append(result.postprocess_ms)

        return case

    cases: dict[str, Callable[[], object]] = {
        "a_session_run": lambda: raw_session.run(None, {input_name: tensor}),
        "d_ours_from_jpeg": ours(detector, "d_ours_from_jpeg"),
        "b2_ultralytics_onnx": lambda: ultra_onnx.predict(str(image_path), imgsz=imgsz, conf=args.conf, verbose=False),
    }
    if rect_detector is not None:
        cases["d_rect_ours_dynamic_onnx"] = ours(rect_detector, "d_rect_ours_dynamic_onnx")
    if ultra_pt is not None:
        cases["b_ultralytics_pt"] = lambda: ultra_pt.predict(
            str(image_path), imgsz=imgsz, conf=args.conf, verbose=False
        )
    load_before = os.getloadavg()
    times = interleaved(cases, args.runs, args.warmup)
    for record in stages.values():
        for values in record.values():
            del values[: args.warmup]
    boxes = len(detector.predict(decode_image(jpeg, **caps), conf=args.conf).boxes)

    # Post-processing in the worst case: a near-zero threshold feeds thousands of candidates to NMS.
    rgb = np.asarray(decode_image(jpeg, **caps))
    low_conf = [detector.predict(rgb, conf=0.001, max_det=300) for _ in range(max(5, args.runs // 3))]
    tabular_path, tabular_meta = build_tabular(work)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "model": {
            "onnx": str(onnx_path),
            "weights": str(weights) if weights else None,
            "arch": None if args.onnx else args.arch,
            "imgsz": imgsz,
            "onnx_dynamic": str(dynamic_path) if dynamic_path else None,
            "end2end": detector.end2end,
            "intra_op_threads": args.threads,
            "conf": args.conf,
            "boxes_on_image": boxes,
        },
        "image": {"path": str(image_path), "bytes": len(jpeg)},
        "latency_ms": {name: stats(values) for name, values in times.items()},
        "ours_stages_ms": {
            case: {name: stats(values) for name, values in record.items()} for case, record in stages.items()
        },
        "low_conf_postprocess_ms": stats([r.postprocess_ms for r in low_conf]),
        "low_conf_boxes": len(low_conf[0].boxes),
        "session_options_run_ms": session_sweep(onnx_path, tensor, max(8, args.runs // 3)),
        "serving_process": serving_process(onnx_path, image_path, tabular_path, tabular_meta, without_cv2=False),
        "serving_process_without_cv2": serving_process(
            onnx_path, image_path, tabular_path, tabular_meta, without_cv2=True
        ),
    }
    latency = report["latency_ms"]
    ratios = {}
    for ours_key in ("d_ours_from_jpeg", "d_rect_ours_dynamic_onnx"):
        if ours_key not in latency:
            continue
        mine = latency[ours_key]["p50"]
        prefix = ours_key.split("_ours")[0]
        ratios[f"{prefix}_over_a"] = mine / latency["a_session_run"]["p50"]
        ratios[f"{prefix}_over_b2"] = mine / latency["b2_ultralytics_onnx"]["p50"]
        if "b_ultralytics_pt" in latency:
            ratios[f"{prefix}_over_b"] = mine / latency["b_ultralytics_pt"]["p50"]
    report["ratios_p50"] = ratios
    shutil.rmtree(work, ignore_errors=True)
    return report


def print_report(report: dict) -> None:
    model, latency = report["model"], report["latency_ms"]
    machine = report["machine"]
    print(
        f"\nInference bench  {report['when']}  cpus={machine['cpus']}  "
        f"load avg {machine['load_average_before'][0]:.2f} -> {machine['load_average_after'][0]:.2f}"
    )
    print(
        f"model {model['arch'] or model['onnx']}  imgsz {model['imgsz']}  end2end={model['end2end']}  "
        f"conf {model['conf']}  boxes {model['boxes_on_image']}  image {report['image']['path']}"
    )
    print(f"\n{'case':<34}{'p50 ms':>10}{'p95 ms':>10}")
    labels = {
        "a_session_run": "(a)  raw session.run",
        "b_ultralytics_pt": "(b)  Ultralytics YOLO(.pt).predict",
        "b2_ultralytics_onnx": "(b') Ultralytics YOLO(onnx).predict",
        "d_ours_from_jpeg": "(d)  ours from JPEG bytes",
        "d_rect_ours_dynamic_onnx": "(d_rect) ours, dynamic ONNX, rect",
    }
    for key, label in labels.items():
        if key in latency:
            print(f"{label:<34}{latency[key]['p50']:>10.2f}{latency[key]['p95']:>10.2f}")
    for case, record in report["ours_stages_ms"].items():
        print(f"\n{case} stages (p50 ms):  " + "  ".join(f"{k} {v['p50']:.2f}" for k, v in record.items()))
    print(
        f"postprocess at conf 0.001 ({report['low_conf_boxes']} boxes): "
        f"p50 {report['low_conf_postprocess_ms']['p50']:.2f} ms"
    )
    print("\nratios (p50): " + "  ".join(f"{k} {v:.3f}" for k, v in report["ratios_p50"].items()))
    print(
        "\nsession.run p50 by SessionOptions: "
        + "  ".join(f"{k} {v['p50']:.1f}" for k, v in report["session_options_run_ms"].items())
    )
    for key in ("serving_process", "serving_process_without_cv2"):
        process = report[key]
        print(
            f"\n{key}: start to first answer {process['start_to_first_answer_s']:.2f} s "
            f"(imports {process['import_s']:.2f}, load {process['load_s']:.2f}, first predict "
            f"{process['first_answer_s']:.2f}); RSS {process['rss_mb']:.0f} MB (peak {process['peak_rss_mb']:.0f}, "
            f"anon {process['anon_mb']:.0f}, file-backed {process['file_mb']:.0f}); heavy modules "
            f"{process['heavy_modules'] or 'none'}; cv2 {'loaded' if process['cv2_loaded'] else 'not loaded'}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_inference", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="yolo11n", choices=["yolo11n", "yolo26n"])
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--end2end", action="store_true", help="export YOLO26 with its NMS-free head (nms=False)")
    parser.add_argument("--onnx", help="benchmark this ONNX file instead of building one")
    parser.add_argument("--weights", help="the .pt matching --onnx, for case (b)")
    parser.add_argument("--onnx-dynamic", help="a dynamic-shape export of the same weights, for case (d_rect)")
    parser.add_argument("--image", help="image file (default: Ultralytics' bus.jpg)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for our detector")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    report = run(args)
    print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"inference-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nresults written to {out.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    main()
