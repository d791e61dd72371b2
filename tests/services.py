"""Real servers for the test session: Redis, and PostgreSQL when TEST_DATABASE=postgres.

The production engines' tests start more with the functions below: an S3-compatible server (moto's
standalone server) and an MLflow tracking server (`mlflow server`, its artifacts proxied to S3).

Loaded with `-p tests.services` (pyproject.toml) so that it runs before pytest-django reads the
settings: it starts the servers on free ports, points REDIS_URL / DATABASE_URL / VAR_DIR at them
and at a throw-away directory, and stops everything when the session ends.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_processes: list[subprocess.Popen] = []
_session_dir: Path | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it answered")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on port {port} within {timeout}s")


def _start(cmd: list[str], log: Path, **kwargs) -> subprocess.Popen:
    process = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, **kwargs)
    _processes.append(process)
    return process


def start_redis(workdir: Path) -> str:
    if not shutil.which("redis-server"):
        raise RuntimeError("redis-server is not installed: apt-get install redis-server (make test does it)")
    port = free_port()
    redis_dir = workdir / "redis"
    redis_dir.mkdir()
    process = _start(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir), "--save", ""],
        workdir / "redis.log",
    )
    wait_for_port(port, process, "redis-server")
    return f"redis://127.0.0.1:{port}/0"


def _as_postgres_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start_postgres(workdir: Path) -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (make test does it)")
    bindir = Path(found[-1]).parent
    pg_dir = Path(tempfile.mkdtemp(prefix="modelyard-pg-"))
    data, sockets = pg_dir / "data", pg_dir / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(pg_dir, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    subprocess.run(
        _as_postgres_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = _start(
        _as_postgres_user(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=100",
            ]
        ),
        workdir / "postgres.log",
    )
    wait_for_port(port, process, "postgres")
    os.environ["MODELYARD_TEST_PG_DIR"] = str(pg_dir)
    return f"postgres://postgres@127.0.0.1:{port}/modelyard"


# Any key works with moto; real names so that boto3, django-storages, MLflow and DVC find them as in production.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "modelyard-test",
    "AWS_SECRET_ACCESS_KEY": "modelyard-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _wait_for_http(url: str, process: subprocess.Popen, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout}s:\n{log.read_text()[-3000:]}")


def start_s3(workdir: Path) -> str:
    """moto's standalone S3-compatible server on 127.0.0.1 (state in memory, gone when it stops): its endpoint URL."""
    port = free_port()
    log = workdir / f"s3-{port}.log"
    process = _start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log)
    endpoint = f"http://127.0.0.1:{port}"
    _wait_for_http(f"{endpoint}/moto-api/", process, "the S3 server (moto)", log)
    return endpoint


def s3_client(endpoint_url: str):
    """A boto3 client of the S3 server, with the test credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


def create_postgres_database(server_url: str, name: str) -> str:
    """A new database on the PostgreSQL server of `server_url` (postgres://user@host:port/any): its URL."""
    import psycopg

    base, _, _ = server_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def start_mlflow_server(workdir: Path, backend_uri: str, artifacts_destination: str, s3_endpoint: str) -> str:
    """`mlflow server` on 127.0.0.1 with its runs and registry in `backend_uri` (postgresql://... or
    sqlite:///...) and the artifacts it serves (--serve-artifacts) in `artifacts_destination` (s3://bucket/prefix
    on `s3_endpoint`): its tracking URI."""
    port = free_port()
    log = workdir / f"mlflow-{port}.log"
    if backend_uri.startswith(("postgres://", "postgresql://")):
        backend_uri = "postgresql+psycopg://" + backend_uri.split("://", 1)[1]  # psycopg 3, not psycopg2
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [
        str(mlflow), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend_uri,
        "--serve-artifacts", "--artifacts-destination", artifacts_destination,
    ]  # fmt: skip
    env = {
        **os.environ,
        **S3_CREDENTIALS,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
    }
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    process = _start(command, log, env=env, cwd=workdir)
    tracking_uri = f"http://127.0.0.1:{port}"
    _wait_for_http(f"{tracking_uri}/health", process, "mlflow server", log, timeout=240)
    return tracking_uri


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    global _session_dir
    if os.environ.get("MODELYARD_TEST_SERVICES") != "external":
        _session_dir = Path(tempfile.mkdtemp(prefix="modelyard-test-"))
        var_dir = _session_dir / "var"
        var_dir.mkdir()
        os.environ["VAR_DIR"] = str(var_dir)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
        os.environ.pop("MLFLOW_ARTIFACT_ROOT", None)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the settings put it under VAR_DIR
        os.environ["YOLO_CONFIG_DIR"] = str(var_dir / "ultralytics")
        os.environ["REDIS_URL"] = start_redis(_session_dir)
        os.environ.pop("CELERY_BROKER_URL", None)
        # Alert webhooks go to test servers on 127.0.0.1 (the guard itself is tested with the
        # setting off), and a failed delivery is tried again within a second, not half a minute.
        os.environ["ALERTS_WEBHOOK_ALLOW_PRIVATE"] = "true"
        os.environ["ALERTS_RETRY_SECONDS"] = "0.3"
        if os.environ.get("TEST_DATABASE") == "postgres":
            os.environ["DATABASE_URL"] = start_postgres(_session_dir)
        else:
            os.environ.pop("DATABASE_URL", None)
    return (yield)


def pytest_unconfigure(config):
    for process in reversed(_processes):
        process.terminate()
    for process in reversed(_processes):
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    _processes.clear()
    pg_dir = os.environ.pop("MODELYARD_TEST_PG_DIR", None)
    if pg_dir:
        shutil.rmtree(pg_dir, ignore_errors=True)
    if _session_dir is not None:
        shutil.rmtree(_session_dir, ignore_errors=True)
