"""Drift-check benchmark: a check over 100,000 logged predictions read from the database, against
Evidently alone on the same frames already in memory.

    python -m bench.bench_drift [--rows 100000] [--runs 3]

Registers the breast-cancer XGBoost model with a training reference in a temporary VAR_DIR (own
Redis, SQLite, MLflow store), logs `--rows` tabular predictions (the reference distribution with
noise, 30 features + 2 probabilities each), and times in the same run:
  (a) our check, `manage.py detect_drift --window ROWS` in a fresh process: ids read in bulk,
      sampled to max_rows (5000), rows read back, tables built, Evidently run, report stored;
      its wall time (from the process's own report) and the process's peak RSS;
  (b) Evidently alone (the adapter, Evidently's own test choice, no HTML) on the whole window
      already in memory as a DataFrame, and (b') on the 5000 sampled rows our check compares.
Prints the table and the ratios a/b, a/b'; writes JSON to bench/results/. Evidently's import (3-5 s)
is paid once per process and is left out of both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.bench_http import ROOT, Environment

RESULTS = ROOT / "bench" / "results"
MODEL = "bench-drift"


def log_predictions(rows: int) -> tuple[object, int]:
    """The model registered with its reference and promoted, and `rows` logged predictions of it."""
    import pandas as pd
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    from backend.registry.services import promote_version, register_from_files
    from backend.scoring.models import TabularPrediction
    from tests.models import build_tabular

    work = Path(os.environ["VAR_DIR"]).parent
    files = build_tabular(work / "tabular", seed=1, rounds=50)
    table = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    booster = xgb.Booster()
    booster.load_model(str(files.model))
    names = list(table.columns)
    reference = table.copy()
    positive = booster.predict(xgb.DMatrix(reference, feature_names=names))
    reference["proba_malignant"], reference["proba_benign"] = 1 - positive, positive
    reference.to_parquet(work / "reference.parquet", index=False)
    version = register_from_files(
        MODEL, "tabular", {**files.files(), "reference": work / "reference.parquet"}, metadata=files.metadata
    )
    promote_version(version, reason="bench")
    rng = np.random.default_rng(0)
    current = table.sample(rows, replace=True, random_state=0).to_numpy() * rng.normal(1, 0.01, (rows, len(names)))
    probabilities = booster.predict(xgb.DMatrix(pd.DataFrame(current, columns=names), feature_names=names))
    batch = []
    for index in range(rows):
        p = float(probabilities[index])
        label = "benign" if p >= 0.5 else "malignant"
        batch.append(
            TabularPrediction(
                model_version=version, inputs=dict(zip(names, current[index].tolist(), strict=True)), label=label,
                class_id=int(p >= 0.5), probabilities={"malignant": 1 - p, "benign": p},
                confidence=max(p, 1 - p), latency_ms=1.0,
            )
        )  # fmt: skip
        if len(batch) == 5000:
            TabularPrediction.objects.bulk_create(batch)
            batch = []
    TabularPrediction.objects.bulk_create(batch)
    return version, rows


def our_check(rows: int) -> dict:
    """detect_drift in a fresh interpreter; Evidently imported before the clock starts (as in a worker)."""
    code = (
        "import django, time; django.setup(); import evidently, mlops.monitoring.drift; "
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork and exec, so it would report this
        # parent's size (100,000 rows in memory) rather than the check's.
        "hwm = lambda: next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')); "
        "from django.core.management import call_command; "
        "from backend.monitoring.models import DriftReport; "
        "before = hwm(); started = time.perf_counter(); "
        f"call_command('detect_drift', {MODEL!r}, '--window', '{rows}', verbosity=0, stdout=open('/dev/null', 'w')); "
        "wall = time.perf_counter() - started; report = DriftReport.objects.latest('created_at'); "
        "print(wall, report.duration_ms, report.current_size, report.status, before, "
        "hwm())"
    )
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    wall, duration_ms, size, status, rss_before, rss_peak = output.stdout.split()[-6:]
    return {
        "wall_s": float(wall),
        "report_duration_s": float(duration_ms) / 1000,
        "compared_rows": int(size),
        "status": status,
        "rss_after_imports_mb": int(rss_before) / 1024,
        "peak_rss_mb": int(rss_peak) / 1024,
    }


def evidently_alone(rows: int, sample: int) -> dict:
    """Evidently on the frames in memory: the whole window, and a sample of the size our check compares."""
    import pandas as pd

    from backend.scoring.models import TabularPrediction
    from mlops.monitoring import evidently_adapter
    from mlops.monitoring.columns import tabular_reference_frame, tabular_rows_to_frame

    names = [
        f["name"]
        for f in json.loads(json.dumps(TabularPrediction.objects.first().model_version.metadata))["feature_schema"]
    ]
    logged = TabularPrediction.objects.values("inputs", "probabilities")
    window = tabular_rows_to_frame(logged.iterator(chunk_size=5000), names, ["malignant", "benign"])
    reference = tabular_reference_frame(pd.read_parquet(Path(os.environ["VAR_DIR"]).parent / "reference.parquet"))
    columns = list(reference.columns)
    evidently_adapter.run_data_drift(reference, window.head(200), numerical=columns, html=False)  # warm up
    timings = {}
    for label, frame in (("whole_window", window), ("sampled", window.sample(sample, random_state=0))):
        started = time.perf_counter()
        evidently_adapter.run_data_drift(reference, frame, numerical=columns, html=False)
        timings[label] = time.perf_counter() - started
    return {"rows": len(window), **timings}


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as scratch:
        env = Environment(Path(scratch))
        try:
            started = time.perf_counter()
            log_predictions(args.rows)
            setup_s = time.perf_counter() - started
            ours = [our_check(args.rows) for _ in range(args.runs)]
            alone = [evidently_alone(args.rows, ours[0]["compared_rows"]) for _ in range(args.runs)]
        finally:
            env.close()
    median = lambda values: float(np.median(values))  # noqa: E731
    report = {
        "rows": args.rows,
        "setup_s": setup_s,
        "ours": ours,
        "evidently_alone": alone,
        "ours_wall_s": median([o["wall_s"] for o in ours]),
        "ours_peak_rss_mb": max(o["peak_rss_mb"] for o in ours),
        "evidently_whole_s": median([a["whole_window"] for a in alone]),
        "evidently_sampled_s": median([a["sampled"] for a in alone]),
        "bench_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    report["ratio_whole"] = report["ours_wall_s"] / report["evidently_whole_s"]
    report["ratio_sampled"] = report["ours_wall_s"] / report["evidently_sampled_s"]
    return report


def print_report(report: dict) -> None:
    ours = report["ours"][0]
    print(f"drift check over {report['rows']} logged predictions (32 columns), {len(report['ours'])} runs, median:")
    print(
        f"  (a) ours, from the database, HTML report stored: {report['ours_wall_s']:.2f} s "
        f"(target <= 10 s), peak RSS {report['ours_peak_rss_mb']:.0f} MB (target <= 500 MB; "
        f"{ours['rss_after_imports_mb']:.0f} MB after imports), compared {ours['compared_rows']} rows, {ours['status']}"
    )
    print(
        f"  (b) Evidently alone, whole window in memory: {report['evidently_whole_s']:.2f} s -> a/b "
        f"{report['ratio_whole']:.2f} (target <= 1.3)"
    )
    print(f"  (b') Evidently alone, the {ours['compared_rows']} sampled rows: {report['evidently_sampled_s']:.2f} s -> "
          f"a/b' {report['ratio_sampled']:.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_drift", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    report = run(parser.parse_args(argv))
    print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"drift-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nresults written to {out.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
