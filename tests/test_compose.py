"""docker-compose.yml and the Dockerfile start the same processes the scale-out test runs: the image's
entrypoint is scripts/start.sh, each product service gives it one of its roles, and every role the
scale-out test starts is a compose service (no Docker engine needed: the files are read)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.scaleout.cluster import PROCESSES

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_SERVICES = ("web", "worker", "trainer", "monitor", "beat")
ENGINES = ("postgres", "redis", "s3", "mlflow", "prometheus")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def start_sh_roles() -> set[str]:
    """The roles scripts/start.sh accepts: the arms of its `case "$role"`."""
    script = (ROOT / "scripts" / "start.sh").read_text()
    return set(re.findall(r"^\s+([a-z]+)\)\s*$", script, flags=re.MULTILINE))


def dockerfile_instruction(name: str) -> list[str]:
    """The exec form of the Dockerfile's last ENTRYPOINT or CMD."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith(f"{name} ")]
    assert lines, f"the Dockerfile has no {name}"
    return yaml.safe_load(lines[-1].removeprefix(f"{name} "))


def test_the_image_starts_every_process_with_scripts_start_sh():
    assert dockerfile_instruction("ENTRYPOINT") == ["/app/scripts/start.sh"]
    assert dockerfile_instruction("CMD") == ["web"]
    assert (ROOT / "scripts" / "start.sh").stat().st_mode & 0o111, "scripts/start.sh must be executable"


def test_each_product_service_runs_its_start_sh_role(compose):
    services = compose["services"]
    assert set(PRODUCT_SERVICES) | set(ENGINES) <= set(services)
    roles = start_sh_roles()
    assert set(PRODUCT_SERVICES) == roles, "one compose service per scripts/start.sh role"
    for name in PRODUCT_SERVICES:
        service = services[name]
        assert "entrypoint" not in service, f"{name}: the image's entrypoint (scripts/start.sh) must run it"
        assert service["build"] == "." and service["image"] == services["web"]["image"], name
        assert service["command"] == [name], f"{name} must run `scripts/start.sh {name}`"


def test_the_scale_out_test_runs_the_compose_commands(compose):
    """Every process the scale-out test starts is `scripts/start.sh ROLE` of a compose service, with the
    queues that service consumes."""
    services = compose["services"]
    for _host, role, extra in PROCESSES:
        assert services[role]["command"] == [role]
        environment = services[role].get("environment", {})
        for key, value in extra.items():
            assert environment.get(key) == value, f"{role}: {key}"
    # The default-queue worker: the queues compose gives it are start.sh's default, which the test uses.
    script = (ROOT / "scripts" / "start.sh").read_text()
    assert f"${{CELERY_QUEUES:-{services['worker']['environment']['CELERY_QUEUES']}}}" in script
    assert {role for _host, role, _ in PROCESSES} == set(PRODUCT_SERVICES) - {"beat"}


def test_the_mlflow_server_is_the_one_the_scale_out_test_starts(compose):
    command = compose["services"]["mlflow"]["command"]
    assert compose["services"]["mlflow"]["entrypoint"] == ["mlflow"] and command[0] == "server"
    flags = {part.split("=", 1)[0]: part.partition("=")[2] for part in command[1:]}
    assert flags["--backend-store-uri"].startswith("postgresql+psycopg://")
    assert flags["--artifacts-destination"].startswith("s3://") and "--serve-artifacts" in flags
    assert flags["--workers"] == "1"


def test_the_app_reaches_every_engine_by_its_service_name(compose):
    environment = compose["x-app"]["environment"]
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert environment["S3_ENDPOINT_URL"] == "http://s3:9000"
    assert environment["MEDIA_BUCKET"] and environment["DVC_REMOTE_URL"].startswith("s3://")
    buckets = shlex.split(compose["services"]["buckets"]["command"][0].replace("&&", " "))
    mlflow = dict(part.split("=", 1) for part in compose["services"]["mlflow"]["command"] if "=" in part)
    for url in (
        environment["DVC_REMOTE_URL"],
        "s3://" + environment["MEDIA_BUCKET"],
        mlflow["--artifacts-destination"],
    ):
        assert f"store/{url.removeprefix('s3://').split('/')[0]}" in buckets


def test_prometheus_scrapes_the_web_service():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"] == [{"names": ["web"], "type": "A", "port": 8000}]
