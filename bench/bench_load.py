"""Load bench: mixed traffic from 1, 4 and 16 clients with locust (headless), against the real server.

    python -m bench.bench_load [--clients 1,4,16] [--seconds 20]

Registers a small detector (yolo11n at 160 px) and the breast-cancer XGBoost model in a temporary
VAR_DIR (own Redis, SQLite, MLflow store), starts gunicorn with the Procfile's `web` line and a
Celery worker for batches, then runs locust in a child process (it monkey-patches the standard
library, which this Django process must not see) with clients sending back to back, no waits:
image uploads (5 parts in 14), tabular records (5), reads of detections and model info (3), and
batch submissions of two images (1). For each client count: p50/p95 per kind of request, error
counts, the rows the database holds against the 2xx answers the clients got, and the answers
without a row (each answered detection id looked up; must be 0: an answer given is a prediction
kept). Prints a table, writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.bench_http import DETECTOR, ROOT, TABULAR, Environment, wait_for_port

RESULTS = ROOT / "bench" / "results"


# -- the locust side (child process) ------------------------------------------------------------
def locust_child(base: str, clients: int, seconds: float, record: dict, image: bytes, out: Path) -> None:
    import gevent
    from locust import HttpUser, constant, task
    from locust.env import Environment as LocustEnvironment

    answered = {"detections": 0, "tabular": 0, "batches": 0}
    detection_ids: list[str] = []

    class Client(HttpUser):
        host = base
        wait_time = constant(0)  # back to back: the headline figure

        @task(5)
        def upload(self):
            with self.client.post(
                "/api/v1/detections/", files={"image": ("p.jpg", image, "image/jpeg")}, name="upload",
                catch_response=True,
            ) as response:  # fmt: skip
                if response.status_code == 201:
                    answered["detections"] += 1
                    detection_ids.append(response.json()["id"])

        @task(5)
        def tabular(self):
            with self.client.post(
                "/api/v1/tabular/predictions/", json={"records": [record]}, name="tabular", catch_response=True
            ) as response:
                if response.status_code == 200:
                    answered["tabular"] += 1

        @task(3)
        def read(self):
            if detection_ids:
                self.client.get(f"/api/v1/detections/{detection_ids[-1]}/thumbnail.jpg", name="read thumbnail")
            self.client.get(f"/api/v1/models/{TABULAR}/info/", name="read model info")

        @task(1)
        def batch(self):
            files = [("files", ("a.jpg", image, "image/jpeg")), ("files", ("b.jpg", image, "image/jpeg"))]
            with self.client.post("/api/v1/batches/", files=files, name="batch", catch_response=True) as response:
                if response.status_code == 202:
                    answered["batches"] += 1

    environment = LocustEnvironment(user_classes=[Client])
    runner = environment.create_local_runner()
    runner.start(clients, spawn_rate=clients)
    gevent.sleep(seconds)
    runner.quit()
    runner.greenlet.join()
    per_name = {}
    for (name, _method), entry in environment.stats.entries.items():
        per_name[name] = {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p95_ms": entry.get_response_time_percentile(0.95),
            "rps": entry.total_rps,
        }
    total = environment.stats.total
    out.write_text(
        json.dumps(
            {
                "clients": clients,
                "seconds": seconds,
                "per_name": per_name,
                "total": {"requests": total.num_requests, "failures": total.num_failures, "rps": total.total_rps},
                "answered": answered,
                "detection_ids": detection_ids,
                "errors": {
                    f"{e.method} {e.name}: {e.error}"[:300]: e.occurrences for e in environment.stats.errors.values()
                },
            }
        )
    )


# -- the bench (parent) -------------------------------------------------------------------------
def rows() -> dict[str, int]:
    from backend.detection.models import Batch, Detection, Source
    from backend.scoring.models import TabularPrediction

    return {
        "detections": Detection.objects.filter(source=Source.API).count(),
        "tabular": TabularPrediction.objects.values("request_id").distinct().count(),
        "batches": Batch.objects.count(),
    }


def missing_detections(ids: list[str]) -> int:
    """Detection ids a client was answered with that have no row."""
    from backend.detection.models import Detection

    found = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(str(pk) for pk in Detection.objects.filter(pk__in=chunk).values_list("pk", flat=True))
    return len(set(ids) - found)


def prepare(work: Path) -> tuple[dict, bytes]:
    from PIL import Image

    from backend.registry.services import promote_version, register_from_files
    from tests.models import build_detector, build_tabular
    from tests.support import image_bytes, synthetic_photo

    detector = build_detector(work / "detector", seed=0, imgsz=160)
    promote_version(register_from_files(DETECTOR, "detection", detector.files(), metadata=detector.metadata))
    tabular = build_tabular(work / "tabular", seed=1, rounds=50)
    promote_version(register_from_files(TABULAR, "tabular", tabular.files(), metadata=tabular.metadata))
    record = {f["name"]: f["mean"] for f in tabular.feature_schema}
    photo = synthetic_photo(640, 480)
    return record, image_bytes(photo.convert("RGB") if isinstance(photo, Image.Image) else photo, fmt="JPEG")


def run(args: argparse.Namespace) -> dict:
    levels = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        work = Path(scratch)
        env = Environment(work)
        try:
            record, image = prepare(work)
            server, base, _ = env.gunicorn(workers=1, threads=8)
            wait_for_port(int(base.rsplit(":", 1)[1]), server)
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "backend", "worker", "--queues", "default,batch,monitoring",
                 "--concurrency", "1", "--loglevel", "WARNING"],
                cwd=ROOT, stdout=(work / "worker.log").open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            env.processes.append(worker)
            for clients in args.clients:
                before = rows()
                out = work / f"locust-{clients}.json"
                payload = json.dumps({"base": base, "clients": clients, "seconds": args.seconds, "record": record})
                (work / "image.jpg").write_bytes(image)
                subprocess.run(
                    [sys.executable, "-m", "bench.bench_load", "--child", payload, str(work / "image.jpg"), str(out)],
                    cwd=ROOT, check=True, timeout=args.seconds + 120,
                )  # fmt: skip
                level = json.loads(out.read_text())
                # Rows are committed before their answer: read at once, nothing is waited for. More rows
                # than answers are requests the server finished after locust stopped their clients.
                saved = {key: value - before[key] for key, value in rows().items()}
                level["saved"] = saved
                level["lost"] = {key: max(0, level["answered"][key] - saved[key]) for key in saved}
                level["lost"]["detection_ids"] = missing_detections(level.pop("detection_ids"))
                levels.append(level)
        finally:
            env.close()
    return {"levels": levels, "seconds": args.seconds}


def print_report(report: dict) -> None:
    print(f"mixed load, {report['seconds']:.0f} s per level, clients back to back (no waits):")
    print(f"{'clients':>7} {'request':<16} {'n':>6} {'fail':>5} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7}")
    for level in report["levels"]:
        for name, entry in sorted(level["per_name"].items()):
            print(
                f"{level['clients']:>7} {name:<16} {entry['requests']:>6} {entry['failures']:>5} "
                f"{entry['p50_ms']:>8.0f} {entry['p95_ms']:>8.0f} {entry['rps']:>7.1f}"
            )
        answered, saved, lost = level["answered"], level["saved"], level["lost"]
        print(f"{'':>7} 2xx answers {answered} / rows saved {saved} / answered without a row {lost}")
        for error, count in level["errors"].items():
            print(f"{'':>7} {count} x {error}")


def main(argv: list[str] | None = None) -> dict | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--child":
        payload = json.loads(argv[1])
        locust_child(
            payload["base"], payload["clients"], payload["seconds"], payload["record"],
            Path(argv[2]).read_bytes(), Path(argv[3]),
        )  # fmt: skip
        return None
    parser = argparse.ArgumentParser(prog="python -m bench.bench_load", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=lambda raw: [int(n) for n in raw.split(",")], default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=20.0)
    report = run(parser.parse_args(argv))
    print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"load-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nresults written to {out.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    main()
