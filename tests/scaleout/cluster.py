"""The installation of docker-compose.yml on one machine: each host a network namespace (tests.scaleout.netns),
each process started as production starts it (`scripts/start.sh ROLE` for the product's own processes).

    data     PostgreSQL, Redis, S3 (moto's server), the MLflow tracking server (PostgreSQL store, S3 artifacts)
    web      two web servers, one per address
    trainer  the training worker
    monitor  the monitoring worker, and the default-queue worker

Every host has its own VAR_DIR: what one host writes there no other host sees, so whatever crosses
hosts goes through the database, Redis, S3 or the MLflow server, as on separate machines.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.scaleout.netns import Host, Network, network

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "scripts" / "start.sh"
BIN = Path(sys.executable).parent

# role -> how many addresses its host gets
LAYOUT = {"data": 1, "web": 2, "trainer": 1, "monitor": 1}
# Each host's own name (a UTS namespace of its own), which Celery puts in its node names.
HOSTNAMES = {"web": "scaleout-web", "trainer": "scaleout-trainer", "monitor": "scaleout-monitor"}
# The product's processes, as scripts/start.sh names them: (host, start.sh role, extra environment)
PROCESSES = (
    ("web", "web", {}),
    ("web", "web", {}),
    ("trainer", "trainer", {}),
    ("monitor", "monitor", {}),
    ("monitor", "worker", {}),
)
PG_PORT, REDIS_PORT, S3_PORT, MLFLOW_PORT, WEB_PORT = 5432, 6379, 9000, 5000, 8000
DATA_SERVICES = ("postgres", "redis", "s3", "mlflow")
SECRET_KEY = "scale-out-test-secret-key-shared-by-every-host-0123456789"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Cluster:
    net: Network
    workdir: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)
    mlflow: Process | None = None
    cleanup: list[Path] = field(default_factory=list)

    @property
    def data(self) -> str:
        return self.net["data"].address

    @property
    def web_urls(self) -> list[str]:
        return [f"http://{address}:{WEB_PORT}" for address in self.net["web"].addresses]

    @property
    def redis_url(self) -> str:
        return f"redis://{self.data}:{REDIS_PORT}/0"

    @property
    def database_dsn(self) -> str:
        return f"postgresql://postgres@{self.data}:{PG_PORT}/modelyard"

    def start(self, name: str, host: Host, args: list[str], *, env: dict | None = None, hostname=None) -> Process:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                host.command(args, hostname=hostname),
                cwd=ROOT,
                env=env or self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def run(self, host: str, args: list[str], *, env: dict | None = None, timeout: float = 120) -> str:
        """A one-off command on `host` (a management command, a client), its output; fails loudly."""
        done = subprocess.run(
            self.net[host].command(args),
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            output = f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            raise RuntimeError(f"{args} on {host} exited {done.returncode}:\n{output}")
        return done.stdout

    def s3_client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.env["S3_ENDPOINT_URL"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        )

    def s3_keys(self, bucket: str) -> list[str]:
        return [item["Key"] for item in self.s3_client().list_objects_v2(Bucket=bucket).get("Contents", [])]

    def resident_memory(self) -> dict[str, list[float]]:
        """Resident memory (MB) of the product's processes on each host: what to size hosts with."""
        found: dict[str, list[float]] = {}
        for role in ("web", "trainer", "monitor"):
            pids = set(self.net[role].pids())
            for pid in sorted(pids):
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue  # it exited meanwhile
                name = _process_name([part.decode() for part in command])
                rss, parent = re.search(r"VmRSS:\s+(\d+) kB", status), re.search(r"PPid:\s+(\d+)", status)
                if name and rss:
                    kind = "child" if parent and int(parent.group(1)) in pids else "main"
                    found.setdefault(f"{role} {name} {kind}", []).append(round(int(rss.group(1)) / 1024, 1))
        return found

    def logs(self) -> str:
        return "\n".join(f"--- {process.name} ---\n{process.tail()}" for process in self.processes)


def _process_name(command: list[str]) -> str:
    """ "gunicorn", or the Celery node name (`--hostname`) of a worker; "" for anything else."""
    if any(part.endswith("gunicorn") for part in command[:2]):
        return "gunicorn"
    if "--hostname" in command:
        return command[command.index("--hostname") + 1]
    return ""


def wait_for_tcp(address: str, port: int, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer on {address}:{port} within {timeout}s:\n{process.tail()}")


def _product_env(workdir: Path, data: str, *, allowed_hosts: list[str]) -> dict[str, str]:
    """What every host of the installation is configured with (docker-compose.yml's x-app environment)."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(
        PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        DJANGO_SETTINGS_MODULE="backend.config.settings",
        MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false",
        PYTHONUNBUFFERED="1",
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS=",".join(allowed_hosts),
        DATABASE_URL=f"postgres://postgres@{data}:{PG_PORT}/modelyard",
        REDIS_URL=f"redis://{data}:{REDIS_PORT}/0",
        # Runs record their artifacts through the tracking server (--serve-artifacts), which keeps them in S3.
        MLFLOW_TRACKING_URI=f"http://{data}:{MLFLOW_PORT}",
        API_ANON_RATE="100000/min",
        API_USER_RATE="100000/min",
        # Logs of every process end up in the test's directory, not in the checkout.
        VAR_DIR=str(workdir / "shared-var"),
        # Media (uploads, drift reports) and the DVC remote in the S3 store, as MLflow's artifacts.
        S3_ENDPOINT_URL=f"http://{data}:{S3_PORT}",
        AWS_ACCESS_KEY_ID="scaleout",
        AWS_SECRET_ACCESS_KEY="scaleout-secret",
        AWS_DEFAULT_REGION="us-east-1",
        MEDIA_BUCKET="media",
        DVC_REMOTE_URL="s3://dvc",
    )
    return env


def host_env(cluster: Cluster, role: str, **extra: str) -> dict[str, str]:
    """The installation's environment with this host's own VAR_DIR."""
    var_dir = cluster.workdir / role / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    return {**cluster.env, "VAR_DIR": str(var_dir), **extra}


def _postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (make test does it)")
    return Path(found[-1]).parent


def start_data_services(cluster: Cluster) -> None:
    """PostgreSQL, Redis and S3 on the data host, then the MLflow server on them."""
    data_host, data = cluster.net["data"], cluster.data
    bindir = _postgres_bindir()
    # Its own directory under /tmp: the postgres user cannot enter pytest's (mode 0700) directories.
    pg_dir = Path(tempfile.mkdtemp(prefix="modelyard-scaleout-pg-"))
    cluster.cleanup.append(pg_dir)
    shutil.chown(pg_dir, "postgres", "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    initdb = [*as_postgres, str(bindir / "initdb"), "-D", str(pg_dir / "data"), "-U", "postgres", "-A", "trust"]
    subprocess.run([*initdb, "-E", "UTF8"], check=True, capture_output=True)
    with (pg_dir / "data" / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {cluster.net.subnet} trust\n")
    command = [
        *as_postgres, str(bindir / "postgres"), "-D", str(pg_dir / "data"), "-p", str(PG_PORT), "-k", str(pg_dir),
        "-c", f"listen_addresses={data}", "-c", "max_connections=200",
        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
    ]  # fmt: skip
    postgres = cluster.start("postgres", data_host, command)
    redis_dir = cluster.workdir / "redis"
    redis_dir.mkdir()
    command = [
        "redis-server", "--bind", data, "--port", str(REDIS_PORT), "--dir", str(redis_dir), "--save", "",
        "--protected-mode", "no",  # it listens on the private network only, as in docker-compose.yml
    ]  # fmt: skip
    redis = cluster.start("redis", data_host, command)
    s3 = cluster.start("s3", data_host, [sys.executable, "-m", "moto.server", "-H", data, "-p", str(S3_PORT)])
    wait_for_tcp(data, PG_PORT, postgres)
    wait_for_tcp(data, REDIS_PORT, redis)
    cluster.run("data", [str(bindir / "pg_isready"), "-h", data, "-p", str(PG_PORT), "-t", "30"])
    cluster.run("data", [str(bindir / "createdb"), "-h", data, "-p", str(PG_PORT), "-U", "postgres", "modelyard"])
    cluster.run("data", [str(bindir / "createdb"), "-h", data, "-p", str(PG_PORT), "-U", "postgres", "mlflow"])
    wait_for_tcp(data, S3_PORT, s3)
    for bucket in ("media", "mlflow", "dvc"):
        cluster.s3_client().create_bucket(Bucket=bucket)
    artifacts = "s3://mlflow/artifacts"
    command = [
        str(BIN / "mlflow"), "server", "--host", data, "--port", str(MLFLOW_PORT),
        # One process: uvicorn's supervisor of several kills a worker that misses a ping on a busy host.
        "--workers", "1",
        "--backend-store-uri", f"postgresql+psycopg://postgres@{data}:{PG_PORT}/mlflow",
        "--artifacts-destination", artifacts, "--serve-artifacts",
        "--allowed-hosts", f"{data}:{MLFLOW_PORT},{data}",
    ]  # fmt: skip
    env = host_env(cluster, "data", MLFLOW_S3_ENDPOINT_URL=cluster.env["S3_ENDPOINT_URL"])
    cluster.mlflow = cluster.start("mlflow", data_host, command, env=env)


@contextmanager
def scale_out(workdir: Path) -> Iterator[Cluster]:
    """The whole installation, running; every process stopped and every namespace deleted after."""
    with ExitStack() as stack:
        net = stack.enter_context(network(LAYOUT, log=workdir / "network.log"))
        allowed = [*net["web"].addresses, "127.0.0.1", "localhost"]
        env = _product_env(workdir, net["data"].address, allowed_hosts=allowed)
        cluster = Cluster(net=net, workdir=workdir, env=env)
        stack.callback(_stop_all, cluster)
        start_data_services(cluster)
        # The schema, from a web host, while the MLflow server creates its own.
        migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
        cluster.run("web", migrate, env=host_env(cluster, "web"), timeout=180)
        wait_for_tcp(cluster.data, MLFLOW_PORT, cluster.mlflow, timeout=120)
        web_addresses = iter(net["web"].addresses)
        for role, script_role, extra in PROCESSES:
            env = host_env(cluster, role, **extra)
            name = script_role
            if script_role == "web":
                address = next(web_addresses)
                env.update(BIND=f"{address}:{WEB_PORT}", WEB_WORKERS="1", WEB_THREADS="4")
                name = f"web-{address}"
            elif script_role == "worker":
                env.update(WORKER_CONCURRENCY="1")  # the flow gives it a few small tasks
            cluster.start(name, net[role], ["bash", str(START), script_role], env=env, hostname=HOSTNAMES[role])
        yield cluster


def _stop_all(cluster: Cluster) -> None:
    """The product's processes first, then the data services they use; each process group gets SIGTERM
    (a web server's group holds its workers too), and SIGKILL after 20 s."""
    data_services = [process for process in cluster.processes if process.name in DATA_SERVICES]
    product = [process for process in cluster.processes if process not in data_services]
    for group in (product, data_services):
        for process in group:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in group:
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.popen.wait(timeout=5)
    for directory in cluster.cleanup:
        shutil.rmtree(directory, ignore_errors=True)


def _signal_group(process: Process, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.popen.pid, sig)
