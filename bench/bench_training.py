"""Training benchmark: our train_detector against calling Ultralytics directly, in one run.

    python -m bench.bench_training [--epochs 10] [--count N] [--imgsz N] [--model yolo11n.yaml]
                                   [--repeats 1]

Both train the same architecture on the same synthetic shapes set (params.yaml's default set,
prepared once) with the same Ultralytics arguments (params.yaml's train_detector section with the
overrides above):
  (u)  YOLO(yaml).train(data=..., **args): Ultralytics alone (its MLflow callback included, as a
       user calling it gets by default)
  (o)  mlops.training.yolo.train_detector(...): the same training plus ONNX export, test-split
       evaluation, drift reference, MLflow lineage, registration and the production comparison
It prints the test mAP50 of ours (ONNX, test split) and the final validation mAP50 of both, the
wall times, and the ratio o/u (target <= 1.05), plus where our extra time goes. A tiny warm-up
training runs first so neither side pays the process's first-use costs; with --repeats the two
alternate and the median ratio is reported. Results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_training", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--count", type=int, default=None, help="synthetic images (default: params.yaml)")
    parser.add_argument("--imgsz", type=int, default=None, help="image and training size (default: params.yaml)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model", default=None, help="architecture yaml (default: params.yaml)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        return run(args, Path(scratch))


def run(args: argparse.Namespace, scratch: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from mlops.config import MlopsConfig, apply_library_env, library_env

    # The libraries' environment with Ultralytics' settings in the scratch folder, whatever the
    # shell had, and no MLflow target inherited from it (both sides log into the scratch store).
    apply_library_env(library_env(scratch), override=True)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(name, None)

    from mlops.data.prepare import SplitSpec, prepare_dataset
    from mlops.data.synthetic import ShapesSpec, generate_shapes
    from mlops.training.params import DetectorParams, load_params_file
    from mlops.training.yolo import train_detector

    defaults = load_params_file()
    shapes = dict(defaults.get("data", {}).get("detection", {}).get("options") or {})
    imgsz = args.imgsz or int((defaults.get("train_detector") or {}).get("imgsz") or 160)
    shapes.update({"imgsz": imgsz, "seed": args.seed, **({"count": args.count} if args.count else {})})
    prepared = prepare_dataset(
        generate_shapes(scratch / "raw", ShapesSpec.from_mapping(shapes)),
        scratch / "prepared",
        SplitSpec.from_mapping(defaults.get("prepare")),
    )
    overrides = {"epochs": args.epochs, "imgsz": imgsz, "batch": args.batch, "seed": args.seed}
    if args.model:
        overrides["model"] = args.model
    params = DetectorParams.resolve(overrides)
    config = MlopsConfig(
        var_dir=scratch / "var",
        tracking_uri=f"sqlite:///{scratch / 'var' / 'mlflow.db'}",
        registry_uri=f"sqlite:///{scratch / 'var' / 'mlflow.db'}",
        artifact_root=str(scratch / "var" / "mlartifacts"),
        experiment="bench-training",
    )
    (scratch / "var").mkdir()
    config.apply_process_env()

    print(f"data: {prepared.counts} images at {imgsz}px, {params.model}, {args.epochs} epochs, batch {args.batch}")
    warm = DetectorParams.resolve({**overrides, "epochs": 1, "imgsz": 64, "plots": False})
    _ultralytics(warm, prepared.data_yaml, scratch / "warmup")
    train_detector(config, warm, prepared.path, model_name="bench-warmup")

    rounds = []
    for index in range(args.repeats):
        direct_s, direct_map50 = _ultralytics(params, prepared.data_yaml, scratch / f"direct-{index}")
        started = time.monotonic()
        outcome = train_detector(config, params, prepared.path, model_name="bench-detector")
        ours_s = time.monotonic() - started
        rounds.append(
            {
                "ultralytics_s": round(direct_s, 2),
                "ours_s": round(ours_s, 2),
                "ratio": round(ours_s / direct_s, 3),
                "ultralytics_val_map50": round(direct_map50, 4),
                "ours_test_map50": round(outcome.metrics["mAP50"], 4),
                "ours_test_map50_95": round(outcome.metrics["mAP50-95"], 4),
                "ours_phases_s": {phase: round(seconds, 2) for phase, seconds in outcome.timings.items()},
            }
        )
        print(json.dumps(rounds[-1]))

    ratio = statistics.median(r["ratio"] for r in rounds)
    result = {
        "bench": "training",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "data": {"counts": prepared.counts, "imgsz": imgsz},
        "params": params.to_dict(),
        "rounds": rounds,
        "ratio_median": ratio,
    }
    last = rounds[-1]
    print(
        f"mAP50 (ours, ONNX on the test split): {last['ours_test_map50']:.3f}   "
        f"mAP50 (Ultralytics, final val): {last['ultralytics_val_map50']:.3f}"
    )
    print(
        f"wall time: ours {last['ours_s']:.1f}s, Ultralytics {last['ultralytics_s']:.1f}s, "
        f"ratio ours/Ultralytics {ratio:.3f} (target <= 1.05)"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"training-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"saved {out.relative_to(ROOT)}")
    return result


def _ultralytics(params, data_yaml: Path, project: Path) -> tuple[float, float]:
    """Ultralytics alone, as a user would call it: seconds and final validation mAP50."""
    from ultralytics import YOLO

    started = time.monotonic()
    model = YOLO(params.model)
    metrics = model.train(
        data=str(data_yaml),
        project=str(project),
        name="train",
        exist_ok=True,
        verbose=False,
        **params.ultralytics_args(),
    )
    return time.monotonic() - started, float(metrics.box.map50) if metrics is not None else float("nan")


if __name__ == "__main__":
    main()
