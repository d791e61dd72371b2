"""Tabular serving benchmark: POST /api/v1/tabular/predictions/ end to end, against the model itself.

    python -m bench tabular [--runs 15] [--block 5] [--sizes 1,1000]

Trains the breast-cancer XGBoost model (tests.models.build_tabular, 100 rounds), registers and promotes
it as the default tabular model in a temporary VAR_DIR (bench_http's Environment: own Redis, SQLite,
MLflow store), starts gunicorn from the Procfile's `web` line and measures, per request size (records
taken from the breast-cancer table itself, cycled), in the same run, round by round in a rotating order:
  (x)      XGBoost itself: Booster.predict(DMatrix) of the same rows, one thread
  (o)      ONNX Runtime itself: session.run (default options) of the same rows as float32, on the ONNX
           file converted from the same model (what serving runs)
  (c)      the API end to end, one client, back to back: the request body encoded once beforehand, the
           clock stops when the whole answer has been read (the headline)
  (c_idle) the same request once the server and this process are idle (bench_http's settle), one per
           round: labelled "idle"
(x), (o), (c) run in blocks of --block calls back to back. Prints p50s, the ratios c/x and c/o, the
server's own latency_ms, and the targets of issue 14 (1 record p50 <= 10 ms, 1,000 records p50 <= 50 ms);
writes JSON to bench/results/. Absolute times depend on the machine and its load: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.bench_http import (
    ROOT,
    TABULAR,
    Environment,
    children_of,
    cpu_seconds,
    free_port,
    settle,
    stats,
    wait_for_port,
    web_command,
)
from bench.bench_shadow import host_busy_seconds

RESULTS = ROOT / "bench" / "results"
URL = "/api/v1/tabular/predictions/"
TARGETS_MS = {1: 10.0, 1000: 50.0}  # issue 14: client p50 end to end, back to back
BUSY_FOREIGN_CORES = 0.25


def register_tabular(work: Path) -> dict:
    """The breast-cancer XGBoost model registered and promoted, its ONNX conversion, and rows of its table."""
    from sklearn.datasets import load_breast_cancer

    from backend.registry.services import promote_version, register_from_files
    from mlops.inference.convert import xgboost_json_to_onnx
    from tests.models import build_tabular

    files = build_tabular(work / "tabular", seed=1, rounds=100)
    version = register_from_files(TABULAR, "tabular", files.files(), metadata=files.metadata)
    promote_version(version, reason="bench")
    names = [feature["name"] for feature in files.feature_schema]
    onnx_path = xgboost_json_to_onnx(files.model, len(names), work / "tabular" / "model.onnx")
    table = load_breast_cancer(as_frame=True).data[names].to_numpy(np.float64)
    return {"json": files.model, "onnx": onnx_path, "names": names, "table": table, "version": version.version}


def measure_size(size: int, *, base: str, model: dict, runs: int, block: int, busy: list[int]) -> dict:
    """Rounds of blocks of (x), (o), (c) in a rotating order, and one idle (c) per round."""
    import onnxruntime as ort
    import requests
    import xgboost as xgb

    names = model["names"]
    rows = model["table"][np.arange(size) % len(model["table"])]
    records = [dict(zip(names, row.tolist(), strict=True)) for row in rows]
    body = json.dumps({"records": records}).encode()
    matrix = rows.astype(np.float32)
    booster = xgb.Booster()
    booster.load_model(str(model["json"]))
    booster.set_param({"nthread": 1})  # one thread, as the web process scores; more only contend on a busy host
    session = ort.InferenceSession(str(model["onnx"]), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    http = requests.Session()
    headers = {"Content-Type": "application/json"}
    server_ms: list[float] = []
    answers: list[bytes] = []

    dropped: list[float] = []

    def request() -> None:
        try:
            response = http.post(f"{base}{URL}", data=body, headers=headers, timeout=60)
        except requests.ConnectionError:  # a kept-alive connection the server closed as it was reused
            dropped.append(time.perf_counter())
            response = http.post(f"{base}{URL}", data=body, headers=headers, timeout=60)
        response.raise_for_status()
        answers.append(response.content)

    cases: dict[str, Callable[[], object]] = {
        "x_xgboost": lambda: booster.predict(xgb.DMatrix(matrix, feature_names=names)),
        "o_onnx_runtime": lambda: session.run(None, {input_name: matrix}),
        "c_http_api": request,
    }
    for case in cases.values():
        for _ in range(3):
            case()
    # The API answers what the model answers on the same rows.
    expected = booster.predict(xgb.DMatrix(matrix, feature_names=names))
    got = [p["probabilities"]["benign"] for p in json.loads(answers[-1])["predictions"]]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    answers.clear()

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
        server_ms.extend(json.loads(answer)["latency_ms"] for answer in answers)
        answers.clear()
        settle(busy)
        began = time.perf_counter()
        request()
        times["c_idle"].append((time.perf_counter() - began) * 1000)
        idle_server_ms.append(json.loads(answers.pop())["latency_ms"])
    elapsed = time.perf_counter() - started
    foreign = ((host_busy_seconds() - host_before) - (cpu_seconds(busy) - ours_before)) / elapsed

    latency = {key: stats(values) for key, values in times.items()}
    x, o, c, c_idle = (latency[k]["p50"] for k in ("x_xgboost", "o_onnx_runtime", "c_http_api", "c_idle"))
    ratios = {"c_over_x": c / x, "c_over_o": c / o, "c_idle_over_x": c_idle / x, "c_idle_over_o": c_idle / o}
    target = TARGETS_MS.get(size)
    return {
        "records": size,
        "body_bytes": len(body),
        "latency_ms": latency,
        "c_server_side_ms": stats(server_ms),
        "c_idle_server_side_ms": stats(idle_server_ms),
        "c_reconnects": len(dropped),
        "c_outside_the_view_ms": c - stats(server_ms)["p50"],
        "ratios_p50": ratios,
        "target_p50_ms": target,
        "met": None if target is None else c <= target,
        "host": {
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "foreign_cores": foreign,
            "seconds": elapsed,
        },
    }


def start_server(env: Environment, *, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    """The Procfile's `web` process on a free port; returns once it listens."""
    port = free_port()
    command, knobs = web_command(f"127.0.0.1:{port}", workers, threads)
    log = (env.work / f"gunicorn-{port}.log").open("wb")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **knobs, "PATH": path}, stdout=log, stderr=subprocess.STDOUT
    )
    env.processes.append(process)
    wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}"


def run(args: argparse.Namespace) -> dict:
    import onnxruntime as ort
    import xgboost as xgb

    work = Path(tempfile.mkdtemp(prefix="bench-tabular-"))
    env = Environment(work)
    results: dict[str, dict] = {}
    try:
        model = register_tabular(work)
        process, base = start_server(env, workers=args.workers, threads=args.threads)
        # Every process of ours (this one, gunicorn's, Redis): settle() waits for them, the rest is "foreign".
        busy = [os.getpid(), process.pid, *children_of(process.pid), *(p.pid for p in env.processes)]
        for size in args.sizes:
            print(f"measuring {size} records ({args.runs} rounds of {args.block})...", flush=True)
            results[str(size)] = measure_size(size, base=base, model=model, runs=args.runs, block=args.block, busy=busy)
        env.stop(process)
    except Exception:
        for log in work.glob("gunicorn-*.log"):
            print(log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        env.close()
        shutil.rmtree(work, ignore_errors=True)

    foreign = max(r["host"]["foreign_cores"] for r in results.values())
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench tabular " + " ".join(args.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "xgboost": xgb.__version__,
            "onnxruntime": ort.__version__,
            "max_foreign_cores": foreign,
            "busy": foreign > BUSY_FOREIGN_CORES,
        },
        "server": {"command": "Procfile web", "workers": args.workers, "threads": args.threads},
        "model": {"data": "breast cancer", "features": len(model["names"]), "rounds": 100},
        "block": args.block,
        "sizes": results,
        "targets_p50_ms": TARGETS_MS,
    }


LABELS = {
    "x_xgboost": "(x) XGBoost Booster.predict(DMatrix), 1 thread",
    "o_onnx_runtime": "(o) ONNX Runtime session.run",
    "c_http_api": "(c) POST /api/v1/tabular/predictions/, back to back",
    "c_idle": "(c_idle) the same, on an idle server",
}


def print_report(report: dict) -> None:
    machine = report["machine"]
    state = "BUSY host: other processes used up to" if machine["busy"] else "quiet host: other processes used"
    print(
        f"\nTabular serving bench  {report['when']}  cpus={machine['cpus']}  xgboost {machine['xgboost']}  "
        f"onnxruntime {machine['onnxruntime']}\n{state} {machine['max_foreign_cores']:.2f} cores during a size's "
        f"measurement; gunicorn {report['server']['workers']} worker x {report['server']['threads']} threads; "
        f"breast-cancer XGBoost, {report['model']['features']} features; blocks of {report['block']}"
    )
    mark = {True: "ok", False: "MISSED", None: "-"}
    for result in report["sizes"].values():
        latency, ratios, host = result["latency_ms"], result["ratios_p50"], result["host"]
        print(
            f"\n{result['records']} records, {result['body_bytes']} bytes  (load avg "
            f"{host['load_average_before'][0]:.2f} -> {host['load_average_after'][0]:.2f}, other processes "
            f"{host['foreign_cores']:.2f} cores)"
        )
        print(f"  {'case':<55}{'p50 ms':>9}{'p95 ms':>9}")
        for key, label in LABELS.items():
            print(f"  {label:<55}{latency[key]['p50']:>9.2f}{latency[key]['p95']:>9.2f}")
        print(
            f"  (c) server side latency_ms p50 {result['c_server_side_ms']['p50']:.2f} (idle "
            f"{result['c_idle_server_side_ms']['p50']:.2f}); outside the view (HTTP, gunicorn, DRF, the answer "
            f"rendered, the log written) {result['c_outside_the_view_ms']:.2f}"
        )
        target = result["target_p50_ms"]
        print(
            f"  c/x {ratios['c_over_x']:.1f}  c/o {ratios['c_over_o']:.1f}   idle: c/x {ratios['c_idle_over_x']:.1f}  "
            f"c/o {ratios['c_idle_over_o']:.1f}   (c) p50 {latency['c_http_api']['p50']:.2f} ms "
            f"(target <= {target} ms) {mark[result['met']]}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench tabular", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds per request size")
    parser.add_argument("--block", type=int, default=5, help="calls back to back per case and round")
    parser.add_argument("--sizes", default="1,1000", help="records per request, comma-separated")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (Procfile default 1)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (Procfile default 8)")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    args.argv = list(argv or [])
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    report = run(args)
    print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"tabular-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nresults written to {out.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
