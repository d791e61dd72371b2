"""Shadow-mode benchmark: production answers back to back, with shadow mode off and on, on a real server.

    python -m bench.bench_shadow [--arch yolo11n] [--requests 40] [--rounds 6] [--shadow-priority idle|low|normal]

Builds a 640-px detector (dynamic-shape export, as trained versions are), registers it twice in a
temporary VAR_DIR (own Redis, SQLite, MLflow store): version 1 promoted, version 2 staged. Starts
gunicorn from the Procfile's `web` line and a Celery worker from its `worker` line (the `monitoring`
queue among others). Then, round after round, in a rotating order, one block per mode:
  off        shadow mode off
  off-again  shadow mode off, a second time: off-again/off is what noise alone moves a ratio by
  on@1.0     shadow mode on, every answer compared by the staging version
  on@<dflt>  shadow mode on at the default sample rate
Each block posts bus.jpg `--requests` times back to back from one client (no pause between
requests: the worker's comparisons of the block run while production answers), after the server
had PLAN_TTL_S to see the mode and the worker had drained the previous block's comparisons. The
host is shared: a block starts once processes other than ours (and the hypervisor's steal) used at
most `--max-foreign` of a core over a second (waiting `--quiet-timeout` at most), and a block
during which they used more is run again (`--attempts` runs at most; the JSON keeps the count and
each block's foreign load).
Prints p50/p95 per mode (client and server-side latency), the ratios to `off` of the blocks of the
same round (median and range over the rounds; off-again's is the noise band), and what the
comparisons recorded (the staged version is the same network, so they must agree fully). Writes
JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.bench_http import (
    ROOT,
    Environment,
    children_of,
    cpu_seconds,
    post_image,
    settle,
    stats,
    wait_for_answer,
)

RESULTS = ROOT / "bench" / "results"
DETECTOR = "bench-detector"  # bench_http's Environment makes it the default detection model


def procfile_command(process: str, values: dict[str, str]) -> list[str]:
    """A Procfile line with its ${VAR:-default} placeholders filled in."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{process}:"))
    command = line.removeprefix(f"{process}:")
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: values.get(m.group(1), m.group(2)), command).split()


def register(work: Path, arch: str, images: list[Path]) -> tuple[object, object]:
    """The same detector registered twice: version 1 in production, version 2 staged."""
    from ultralytics import YOLO

    from backend.registry.services import promote_version, register_from_files, stage_version
    from bench.bench_inference import build_detector

    weights, onnx_path = build_detector(arch, 640, work, end2end=False, images=images, dynamic=True)
    names = YOLO(str(weights)).names
    metadata = {"class_names": [names[i] for i in sorted(names)], "imgsz": 640, "architecture": arch, "task": "detect"}
    files = {"weights": weights, "onnx": onnx_path}
    production, staged = (register_from_files(DETECTOR, "detection", files, metadata=metadata) for _ in range(2))
    promote_version(production, reason="bench")
    stage_version(staged)
    return production, staged


def start_worker(env: Environment, priority: str, threads: int) -> subprocess.Popen:
    from backend import celery_app

    command = [*procfile_command("worker", {}), "--without-gossip", "--without-mingle", "--without-heartbeat"]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    worker_env = {**os.environ, "PATH": path, "SHADOW_PRIORITY": priority, "SHADOW_INTRA_OP_THREADS": str(threads)}
    log = (env.work / "worker.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT)
    env.processes.append(process)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited:\n{(env.work / 'worker.log').read_text()[-3000:]}")
        if celery_app.control.ping(timeout=0.5):
            return process
    raise RuntimeError("the worker did not answer in time")


def drain(worker: subprocess.Popen, *, timeout: float = 600) -> float:
    """Wait until the monitoring queue is empty and the worker idle; seconds waited."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    started = time.monotonic()
    pids = children_of(worker.pid)
    while time.monotonic() - started < timeout:
        if client.llen("monitoring") == 0 and not client.hlen("unacked"):
            settle(pids, window=0.2, timeout=5)
            if client.llen("monitoring") == 0 and not client.hlen("unacked"):
                break
        time.sleep(0.1)
    return time.monotonic() - started


def host_busy_seconds() -> float:
    """CPU time the whole host spent busy so far (every core; steal counts as busy: it is someone else's)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(ours: list[int], max_foreign: float, *, timeout: float = 300) -> float:
    """Wait until other processes use at most `max_foreign` cores over a second; seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        host_before, ours_before = host_busy_seconds(), cpu_seconds(ours)
        time.sleep(1.0)
        if (host_busy_seconds() - host_before) - (cpu_seconds(ours) - ours_before) <= max_foreign:
            break
    return time.monotonic() - started


def block(base: str, jpeg: bytes, count: int, ours: list[int]) -> dict:
    """`count` production answers back to back from one client, and the CPU others used meanwhile."""
    import requests

    session = requests.Session()
    client_ms, server_ms = [], []
    host_before, ours_before = host_busy_seconds(), cpu_seconds(ours)
    started = time.perf_counter()
    for _ in range(count):
        sent = time.perf_counter()
        response = post_image(session, base, jpeg)
        client_ms.append((time.perf_counter() - sent) * 1000)
        response.raise_for_status()
        server_ms.append(response.json()["latency_ms"])
    seconds = time.perf_counter() - started
    foreign = (host_busy_seconds() - host_before) - (cpu_seconds(ours) - ours_before)
    return {"client_ms": client_ms, "server_ms": server_ms, "seconds": seconds, "foreign_cores": foreign / seconds}


def run(args: argparse.Namespace) -> dict:
    import importlib.util

    work = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    env = Environment(work)
    try:
        from backend.monitoring.models import ShadowComparison, ShadowSettings
        from backend.monitoring.services.shadow import PLAN_TTL_S, shadow_summary

        assets = Path(importlib.util.find_spec("ultralytics").origin).parent / "assets"
        jpeg = (assets / "bus.jpg").read_bytes()
        production, staged = register(work, args.arch, [assets / "bus.jpg", assets / "zidane.jpg"])
        default_rate = ShadowSettings._meta.get_field("sample_rate").default
        shadow = ShadowSettings.objects.create(model=production.model, enabled=False)
        worker = start_worker(env, args.shadow_priority, args.shadow_threads)
        server, base, _ = env.gunicorn(workers=1, threads=8)
        wait_for_answer(base, jpeg, server)
        modes = {
            "off": (False, default_rate),
            "off-again": (False, default_rate),
            "on@1.0": (True, 1.0),
            f"on@{default_rate:g}": (True, default_rate),
        }
        # Warm-up: the worker loads the staging version and both sides run a few times.
        shadow.enabled, shadow.sample_rate = True, 1.0
        shadow.save()
        time.sleep(PLAN_TTL_S + 0.5)
        busy = [os.getpid(), *children_of(server.pid), *children_of(worker.pid)]
        ours = [*busy, server.pid, worker.pid, env.processes[0].pid]  # and Redis
        block(base, jpeg, 5, ours)
        drain(worker)
        load_before = os.getloadavg()
        results: dict[str, list[dict]] = {mode: [] for mode in modes}
        names = list(modes)
        for index in range(args.rounds):
            for mode in names[index % len(names) :] + names[: index % len(names)]:
                shadow.enabled, shadow.sample_rate = modes[mode]
                shadow.save()
                time.sleep(PLAN_TTL_S + 0.5)  # the server's cached plan expires
                attempts = 0
                while True:
                    attempts += 1
                    drain(worker)
                    wait_for_quiet(ours, args.max_foreign, timeout=args.quiet_timeout)
                    settle(busy)
                    before = ShadowComparison.objects.count()
                    timings = block(base, jpeg, args.requests, ours)
                    drained_s = drain(worker)
                    if timings["foreign_cores"] <= args.max_foreign or attempts == args.attempts:
                        break
                compared = ShadowComparison.objects.count() - before
                results[mode].append({**timings, "compared": compared, "drain_s": drained_s, "attempts": attempts})
        load_after = os.getloadavg()
        summary = shadow_summary(production.model, shadow_version=staged)
    finally:
        env.close()
        shutil.rmtree(work, ignore_errors=True)

    per_mode = {}
    for mode, blocks in results.items():
        client = [value for b in blocks for value in b["client_ms"]]
        server_side = [value for b in blocks for value in b["server_ms"]]
        per_mode[mode] = {
            "client_ms": stats(client),
            "server_ms": stats(server_side),
            "block_p50_client_ms": [float(np.percentile(b["client_ms"], 50)) for b in blocks],
            "compared": sum(b["compared"] for b in blocks),
            "requests": len(client),
            "drain_after_block_s": [b["drain_s"] for b in blocks],
            "foreign_cores_by_block": [b["foreign_cores"] for b in blocks],
            "attempts_by_block": [b["attempts"] for b in blocks],
        }
    off = per_mode["off"]
    ratios = {}
    for mode, data in per_mode.items():
        if mode == "off":
            continue
        by_round = [on / base for on, base in zip(data["block_p50_client_ms"], off["block_p50_client_ms"], strict=True)]
        ratios[mode] = {
            "client_p50_by_round": by_round,
            "client_p50_median_of_rounds": float(np.median(by_round)),
            "client_p50_pooled": data["client_ms"]["p50"] / off["client_ms"]["p50"],
            "client_p95_pooled": data["client_ms"]["p95"] / off["client_ms"]["p95"],
            "server_p50_pooled": data["server_ms"]["p50"] / off["server_ms"]["p50"],
        }
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": load_after},
        "model": {"arch": args.arch, "imgsz": 640, "image": "bus.jpg", "image_bytes": len(jpeg)},
        "worker": {"shadow_priority": args.shadow_priority, "shadow_intra_op_threads": args.shadow_threads},
        "requests_per_block": args.requests,
        "max_foreign_cores": args.max_foreign,
        "rounds": args.rounds,
        "modes": per_mode,
        "ratios_to_off": ratios,
        "shadow_summary": summary,
    }


def print_report(report: dict) -> None:
    machine = report["machine"]
    print(
        f"\nShadow-mode bench  {report['when']}  cpus={machine['cpus']}  load avg "
        f"{machine['load_average_before'][0]:.2f} -> {machine['load_average_after'][0]:.2f}  "
        f"{report['model']['arch']} at 640 on bus.jpg; worker SHADOW_PRIORITY={report['worker']['shadow_priority']} "
        f"SHADOW_INTRA_OP_THREADS={report['worker']['shadow_intra_op_threads']}"
    )
    print(
        f"{report['rounds']} rounds x {report['requests_per_block']} back-to-back requests per mode; blocks run "
        f"again while other processes used > {report['max_foreign_cores']} of a core\n"
    )
    print(
        f"{'mode':<10}{'client p50':>12}{'p95':>9}{'server p50':>12}{'p95':>9}{'compared':>10}  block p50s (ms) [runs]"
    )
    for mode, data in report["modes"].items():
        blocks = ", ".join(
            f"{v:.1f}" + (f" [{n}]" if n > 1 else "")
            for v, n in zip(data["block_p50_client_ms"], data["attempts_by_block"], strict=True)
        )
        print(
            f"{mode:<10}{data['client_ms']['p50']:>12.1f}{data['client_ms']['p95']:>9.1f}"
            f"{data['server_ms']['p50']:>12.1f}{data['server_ms']['p95']:>9.1f}"
            f"{data['compared']:>6}/{data['requests']:<4} {blocks}"
        )
    print("\nratio of client p50 to the off block of the same round: median over rounds [range]; pooled p50, p95")
    for mode, ratio in report["ratios_to_off"].items():
        rounds = ratio["client_p50_by_round"]
        print(
            f"  {mode + ' / off':<18}{ratio['client_p50_median_of_rounds']:.3f} [{min(rounds):.3f}-{max(rounds):.3f}]"
            f"   pooled {ratio['client_p50_pooled']:.3f}, {ratio['client_p95_pooled']:.3f}"
            f"   server-side p50 {ratio['server_p50_pooled']:.3f}"
        )
    summary = report["shadow_summary"] or {}
    print(
        f"comparisons: {summary.get('samples')} recorded, box match share {summary.get('box_match_share')}, "
        f"mean confidence delta {summary.get('mean_confidence_delta')} (the same network: 1.0 and 0.0 expected), "
        f"staging predict {summary.get('shadow_ms_mean')} ms on the worker"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_shadow", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="yolo11n", choices=["yolo11n", "yolo26n"])
    parser.add_argument("--requests", type=int, default=40, help="back-to-back requests per block")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the four modes, in rotating order")
    parser.add_argument("--shadow-priority", default="idle", choices=["idle", "low", "normal"])
    parser.add_argument("--shadow-threads", type=int, default=1, help="the worker's SHADOW_INTRA_OP_THREADS")
    parser.add_argument(
        "--max-foreign", type=float, default=0.25, help="a block is run again when other processes used more cores"
    )
    parser.add_argument("--attempts", type=int, default=3, help="runs of a block at most, when others were busy")
    parser.add_argument("--quiet-timeout", type=float, default=60, help="seconds to wait for others to go quiet")
    report = run(parser.parse_args(argv))
    print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"shadow-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nresults written to {out.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
