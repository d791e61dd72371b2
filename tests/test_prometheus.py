"""A real Prometheus server scrapes a real web server (gunicorn with the repo's config, two worker
processes) and answers with the series our predictions moved, through its HTTP API."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.factories import TrainingJobFactory
from tests.helpers import wait_until
from tests.services import free_port
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.prometheus, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = Path("/usr/bin/prometheus")


def _database_url() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    return f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_http(url: str, process: subprocess.Popen, log: Path, what: str) -> None:
    """Until `url` answers. A real request, not a bare TCP connect: gunicorn's threaded worker keeps a
    connection that sent nothing open until its graceful timeout when it stops."""

    def answers() -> bool:
        assert process.poll() is None, f"{what} exited:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            requests.get(url, headers={"Connection": "close"}, timeout=2)
        except requests.RequestException:  # not listening yet, or too busy starting to answer in time
            return False
        return True

    wait_until(answers, timeout=60, interval=0.2, what=what)


@pytest.fixture
def web_server(tmp_path, unique_name):
    """gunicorn as the Procfile starts it (gunicorn.conf.py), 2 workers, metrics only with the token."""
    token = secrets.token_urlsafe(16)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metric-files"),
        "METRICS_ALLOW": "192.0.2.0/24",  # not this machine: the scrape must carry the token
        "METRICS_TOKEN": token,
        "DEFAULT_DETECTION_MODEL": f"{unique_name}-det",
        "DEFAULT_TABULAR_MODEL": unique_name,
        "API_ANON_RATE": "100000/min",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    cmd = [str(gunicorn), "backend.config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"]
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/health", server, log, "gunicorn")
        yield {
            "url": f"http://127.0.0.1:{port}",
            "port": port,
            "token": token,
            "log": log,
            "metric_files": Path(env["PROMETHEUS_MULTIPROC_DIR"]),
            "stop": lambda: _stop(server),
        }
    finally:
        _stop(server)


@pytest.fixture
def prometheus(tmp_path, web_server):
    """Debian's prometheus scraping the web server's /metrics every second, with the bearer token."""
    if not PROMETHEUS.exists():
        pytest.fail("/usr/bin/prometheus is missing: apt-get install prometheus (make test installs it)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: modelyard\n"
        "    metrics_path: /metrics\n"
        f"    authorization:\n      credentials: {web_server['token']}\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{web_server['port']}']\n"
    )
    port = free_port()
    cmd = [
        str(PROMETHEUS),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/-/ready", server, log, "prometheus")
        yield {"url": f"http://127.0.0.1:{port}", "stop": lambda: _stop(server)}
    finally:
        _stop(server)


def query(api: str, promql: str) -> dict[frozenset, float]:
    """An instant query through Prometheus' HTTP API: {series labels (no name, job, instance): value}."""
    response = requests.get(f"{api}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    ignored = {"__name__", "job", "instance"}
    return {
        frozenset((k, v) for k, v in result["metric"].items() if k not in ignored): float(result["value"][1])
        for result in body["data"]["result"]
    }


def labels(**pairs) -> frozenset:
    return frozenset(pairs.items())


def predict(url: str, photo: bytes, records: list[dict]) -> dict[str, list[requests.Response]]:
    """6 detections and 3 scoring calls of 2 records, 4 at a time (so both workers answer some), and a
    rejected upload. Connection: close, so that stopping gunicorn needs not wait for idle connections."""

    def post(path: str, **kwargs) -> requests.Response:
        return requests.post(f"{url}{path}", headers={"Connection": "close"}, timeout=120, **kwargs)

    with ThreadPoolExecutor(4) as pool:
        detections = list(pool.map(lambda _: post("/api/v1/detections/", files={"image": ("p.png", photo)}), range(6)))
        scores = list(pool.map(lambda _: post("/api/v1/tabular/predictions/", json={"records": records}), range(3)))
    rejected = post("/api/v1/detections/", files={"image": ("x.png", b"no picture")})
    return {"detections": detections, "scores": scores, "rejected": [rejected]}


def test_prometheus_scrapes_the_series_our_predictions_moved(
    serve_detector, serve_tabular, model_files, unique_name, web_server, prometheus
):
    detector = serve_detector(0, name=f"{unique_name}-det")
    tabular = serve_tabular(0)
    TrainingJobFactory(running=True)
    records = [{f["name"]: f["mean"] for f in model_files["tabular"][0].feature_schema}] * 2

    answers = predict(web_server["url"], image_bytes(synthetic_photo(64, 48)), records)

    assert [r.status_code for r in answers["detections"]] == [201] * 6, web_server["log"].read_text()[-3000:]
    assert [r.status_code for r in answers["scores"]] == [200] * 3
    assert answers["rejected"][0].status_code == 400
    refused = requests.get(f"{web_server['url']}/metrics", headers={"Connection": "close"}, timeout=10)
    assert refused.status_code == 403  # this machine is not in METRICS_ALLOW: only the token gets in
    api = prometheus["url"]
    det = labels(model=f"{unique_name}-det", version=str(detector.version), kind="detection")
    tab = labels(model=unique_name, version=str(tabular.version), kind="tabular")
    wait_until(
        lambda: (found := query(api, "modelyard_predictions_total")).get(det) == 6 and found.get(tab) == 6,
        timeout=90,
        interval=1,
        what="Prometheus to hold 6 detections and 6 records scored",
    )
    latency = query(api, "modelyard_prediction_latency_seconds_count")
    assert (latency[det], latency[tab]) == (6, 3)  # one observation per call
    code = answers["rejected"][0].json()["error"]["code"]
    errors = query(api, "modelyard_prediction_errors_total")
    assert errors[labels(model=f"{unique_name}-det", kind="detection", code=code)] == 1
    generation = query(api, f'modelyard_serving_generation{{model="{unique_name}-det"}}')
    assert list(generation.values()) == [detector.model.deployments.latest("id").pk]
    assert query(api, "modelyard_training_jobs")[labels(status="running")] >= 1
    assert query(api, 'django_http_responses_total_by_status_view_method_total{view="api-detection-list"}')
    assert list(query(api, 'up{job="modelyard"}').values()) == [1.0]

    # Prometheus first: scraping every second, it keeps a connection open that gunicorn would wait for.
    prometheus["stop"]()
    web_server["stop"]()  # gunicorn's child_exit: the exited workers' live gauges are gone, counters stay
    files = web_server["metric_files"]
    assert not list(files.glob("gauge_livemax_*.db")) and len(list(files.glob("counter_*.db"))) == 2
