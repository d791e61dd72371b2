"""Scale-out on one machine: the data services, two web servers, a training worker and a monitoring worker
each on a host of its own (network namespaces), started with the commands docker-compose.yml runs.

A job submitted through web host 1 trains on the trainer host; its version, promoted through web host 2,
answers on both web hosts within a second; a drift check asked for in the admin runs on the monitoring
host. Skipped, with the reason, where network namespaces cannot be made (not root, no iproute2).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import wait_until
from tests.scaleout.cluster import HOSTNAMES, MLFLOW_PORT, PROCESSES, Cluster, scale_out
from tests.scaleout.netns import NamespacesNotPermitted, check_permitted

logger = logging.getLogger(__name__)
pytestmark = [pytest.mark.scaleout, pytest.mark.timeout(420)]

MODEL = "scaleout-cancer"
ADMIN, PASSWORD = "ops", "scale-out-ops-password"
PROMOTION_DEADLINE_S = 1.0
# Tiny XGBoost trainings on scikit-learn's breast-cancer table (bundled: nothing downloaded).
FIRST_JOB = {"kind": "tabular", "model_name": MODEL, "params": {"n_estimators": 10}, "auto_promote": True}
SECOND_JOB = {"kind": "tabular", "model_name": MODEL, "params": {"n_estimators": 12, "seed": 1}}


def wait_for(predicate, *, timeout: float, what: str, cluster: Cluster, interval: float = 0.3):
    """wait_until, failing with the cluster's logs."""
    return wait_until(
        predicate, timeout, interval, what=f"{what}; logs in {cluster.workdir / 'logs'}", details=cluster.logs
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        check_permitted()
    except NamespacesNotPermitted as exc:
        pytest.skip(f"network namespaces are not permitted here: {exc}")
    workdir = tmp_path_factory.mktemp("scaleout")
    with scale_out(workdir) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def token(cluster) -> str:
    """A superuser's API token, made with the commands an operator runs on a web host (while the
    processes boot), once every web server is healthy and every Celery node answers."""
    # createsuperuser and drf_create_token, in one start of Django.
    commands = (
        "from django.core.management import call_command; "
        f"call_command('createsuperuser', interactive=False, username={ADMIN!r}, email='ops@example.com'); "
        f"call_command('drf_create_token', {ADMIN!r})"
    )
    env = {"DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    out = cluster.run("web", [sys.executable, "manage.py", "shell", "-c", commands], env=env)
    key = re.search(r"token (\w+)", out).group(1)
    for url in cluster.web_urls:
        wait_for(lambda url=url: _healthy(url), timeout=120, what=f"{url}/health", cluster=cluster)
    nodes = {f"{role}@{HOSTNAMES[host]}" for host, role, _ in PROCESSES if role != "web"}
    wait_for(lambda: nodes <= _celery_nodes(cluster), timeout=120, what=f"the Celery nodes {nodes}", cluster=cluster)
    return key


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _celery_nodes(cluster: Cluster) -> set[str]:
    from celery import Celery

    app = Celery(broker=cluster.redis_url)
    try:
        return {node for reply in app.control.ping(timeout=1.0) for node in reply}
    finally:
        app.close()


def api(token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    return session


def score(url: str, records: list[dict]) -> requests.Response:
    return requests.post(f"{url}/api/v1/tabular/predictions/", json={"model": MODEL, "records": records}, timeout=30)


def version_answering(url: str, record: dict) -> int | None:
    """The version that answered a prediction on `url`; None while none can (503) or the host is busy."""
    try:
        response = score(url, [record])
    except requests.RequestException:
        return None
    return response.json()["model"]["version"] if response.status_code == 200 else None


def seconds_until_served(url: str, record: dict, version: int, since: float) -> float:
    """Seconds from `since` to the first answer of `url` made by `version` (polled as fast as it answers)."""
    while time.monotonic() - since < 10:
        if version_answering(url, record) == version:
            return time.monotonic() - since
    return float("inf")


def breast_cancer_records(n: int) -> list[dict]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    return frame.sample(n, replace=True, random_state=0).to_dict(orient="records")


def test_trained_on_the_trainer_host_promoted_on_one_web_host_served_by_both(cluster, token):
    web1, web2 = cluster.web_urls
    session = api(token)

    # Submitted through web host 1: the first job promotes its version, the second waits for a person.
    jobs = []
    for body in (FIRST_JOB, SECOND_JOB):
        response = session.post(f"{web1}/api/v1/training-jobs/", json=body, timeout=10)
        assert response.status_code == 201, response.text
        jobs.append(response.json()["id"])
    record, *records = breast_cancer_records(121)

    first = wait_for_job(cluster, session, web2, jobs[0])
    old = first["model_version"]["version"]
    assert first["model_version"]["status"] == "production"

    def serving_old(url: str) -> None:
        answers = lambda: version_answering(url, record) == old  # noqa: E731
        wait_for(answers, timeout=30, what=f"{url} to serve version {old}", cluster=cluster)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(serving_old, (web1, web2)))  # each host loads it on its first request

    # Traffic on both hosts, and a drift check asked for in the admin of web host 1: the monitoring host
    # checks it while the trainer host trains the second job.
    for url, half in ((web1, records[:60]), (web2, records[60:])):
        response = score(url, half)
        assert response.status_code == 200 and response.json()["model"]["version"] == old, response.text
    check_drift_in_admin(cluster, web1)

    second = wait_for_job(cluster, session, web1, jobs[1])
    new = second["model_version"]["version"]
    assert new == old + 1 and second["model_version"]["status"] != "production"

    # Promoted through web host 2; both hosts answer with it within a second of the promotion's answer.
    response = session.post(f"{web2}/api/v1/models/{MODEL}/versions/{new}/promote/", json={}, timeout=30)
    promoted_at = time.monotonic()
    assert response.status_code == 200, response.text
    with ThreadPoolExecutor(2) as pool:
        delays = list(pool.map(lambda url: seconds_until_served(url, record, new, promoted_at), (web1, web2)))
    logger.info("scaleout.promotion_served seconds_after_promotion=%s", delays)
    assert max(delays) < PROMOTION_DEADLINE_S, f"seconds until v{new} answered on web host 1, 2: {delays}"

    def report():
        try:
            reports = session.get(f"{web2}/api/v1/drift-reports/", params={"model": MODEL}, timeout=15).json()
        except requests.RequestException:
            return None
        return reports["results"][0] if reports["results"] else None

    drift = wait_for(report, timeout=120, interval=1.0, what="the drift report", cluster=cluster)
    assert drift["status"] in ("ok", "drift"), drift
    # Its window: the 120 records, and the one prediction each host answered first with that version.
    assert drift["version"] == old and drift["current_size"] == 122, drift
    # Where it ran: Celery's result row (django-celery-results) names the node that ran the task.
    assert ran_on(cluster, "monitoring.check_drift", report_id=drift["id"]) == f"monitor@{HOSTNAMES['monitor']}"
    # Its HTML report is media, in the S3 bucket; the versions' artifacts are in MLflow's.
    html = query(cluster, "SELECT html FROM monitoring_driftreport WHERE id = %s", drift["id"])[0][0]
    assert html and html in cluster.s3_keys("media"), (html, cluster.s3_keys("media"))
    assert any(key.endswith("model.onnx") for key in cluster.s3_keys("mlflow"))

    # The MLflow server's production alias has followed the promotion, moved by the default-queue worker.
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    server = f"http://{cluster.data}:{MLFLOW_PORT}"
    client = MlflowClient(tracking_uri=server, registry_uri=server)

    def alias_moved() -> bool:
        try:
            return client.get_model_version_by_alias(MODEL, "production").version == str(new)
        except MlflowException:
            return False

    wait_for(alias_moved, timeout=30, what="the MLflow production alias", cluster=cluster)
    memory = cluster.resident_memory()
    (cluster.workdir / "measurements.json").write_text(json.dumps({"served_after_s": delays, "rss_mb": memory}))
    logger.info("scaleout.resident_memory_mb %s", memory)


def wait_for_job(cluster: Cluster, session: requests.Session, url: str, job: int) -> dict:
    """The job's row once it ended; it must have succeeded, trained by the trainer host's Celery node."""

    def ended():
        try:
            row = session.get(f"{url}/api/v1/training-jobs/{job}/", timeout=15).json()
        except requests.RequestException:
            return None  # a busy host (training shares the machine's cores) is asked again
        return row if row["status"] in ("succeeded", "failed", "cancelled") else None

    row = wait_for(ended, timeout=150, interval=1.0, what=f"training job #{job}", cluster=cluster)
    assert row["status"] == "succeeded", f"{row['error']}\n{row['traceback']}\n{row['log_tail'][-3000:]}"
    assert row["worker_hostname"] == f"trainer@{HOSTNAMES['trainer']}", row["worker_hostname"]
    return row


def check_drift_in_admin(cluster: Cluster, url: str) -> None:
    """An operator signs in, saves the model's drift settings and runs "Check drift now" on them."""
    browser = requests.Session()
    login = f"{url}/admin/login/"
    browser.get(login, timeout=10)
    signed_in = browser.post(
        login,
        data={
            "username": ADMIN,
            "password": PASSWORD,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": login},
        timeout=10,
    )
    assert signed_in.url.rstrip("/").endswith("/admin"), signed_in.text[:500]
    model_id = query(cluster, "SELECT id FROM registry_registeredmodel WHERE name = %s", MODEL)[0][0]
    add = f"{url}/admin/monitoring/driftsettings/add/"
    browser.get(add, timeout=10)
    saved = browser.post(
        add,
        data={
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            "model": model_id,
            "enabled": "on",
            "window_predictions": 1000,
            "min_samples": 100,
            "reference_predictions": 500,
            "column_methods": "{}",
            "column_thresholds": "{}",
            "max_rows": 5000,
        },
        headers={"Referer": add},
        timeout=10,
    )
    assert saved.status_code == 200 and "errornote" not in saved.text, saved.text[-2000:]
    settings_id = query(cluster, "SELECT id FROM monitoring_driftsettings WHERE model_id = %s", model_id)[0][0]
    changelist = f"{url}/admin/monitoring/driftsettings/"
    queued = browser.post(
        changelist,
        data={
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            "action": "check_now",
            "_selected_action": settings_id,
            "index": 0,
        },
        headers={"Referer": changelist},
        timeout=10,
    )
    assert "1 drift check(s) queued." in queued.text, queued.text[-2000:]


def query(cluster: Cluster, sql: str, *params) -> list[tuple]:
    import psycopg

    with psycopg.connect(cluster.database_dsn, connect_timeout=5) as connection:
        return connection.execute(sql, params).fetchall()


def ran_on(cluster: Cluster, task: str, *, report_id: int) -> str:
    rows = query(cluster, "SELECT worker, result FROM django_celery_results_taskresult WHERE task_name = %s", task)
    workers = [worker for worker, result in rows if f'"report": {report_id},' in (result or "")]
    assert workers, rows
    return workers[0]
