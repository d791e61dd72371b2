"""Promotions and rollbacks of one model from several OS processes at once (real row locks on
PostgreSQL; SQLite's immediate transactions serialise the writers): one production version, a
history in which each change starts where the previous one ended, MLflow's alias and the serving
generation on the result, and every attempt either in the history or refused with a clear error."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.core.mlops_config import mlops_config
from backend.registry import services
from backend.registry.models import Deployment, ModelVersion
from backend.serving.generation import serving_generation
from tests.web import database_url

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[3]
PROCESSES = 5
OPERATIONS = 50

# One worker process: waits for "go" on stdin, runs its operations one after another (retrying an
# operation refused because production moved, as a client told to look again would), prints one
# JSON line per operation. Anything but a registry refusal is reported with its traceback.
WORKER = """
import json, sys, traceback
import django
django.setup()
from backend.registry import services
from backend.registry.models import ModelVersion, RegisteredModel
from mlops.exceptions import MlopsError, SmokeTestFailed

operations = json.loads(sys.argv[1])
RETRIES = 5
print("ready", flush=True)
sys.stdin.readline()
def attempt(kind, pk):
    if kind == "promote":
        version = ModelVersion.objects.select_related("model").get(pk=pk)
        return services.promote_version(version, reason="race")
    return services.rollback_model(RegisteredModel.objects.get(pk=pk), reason="race")

for kind, pk in operations:
    result = {"kind": kind, "pk": pk, "tries": 0}
    while True:  # a refusal because production moved says "look again and retry": a client does
        result["tries"] += 1
        try:
            result.update(outcome="ok", deployment=attempt(kind, pk).pk)
        except SmokeTestFailed as exc:
            result.update(outcome="smoke_test_failed", deployment=exc.details["deployment"], message=exc.message)
        except MlopsError as exc:
            result.update(outcome="refused", code=exc.code, message=exc.message)
            if exc.code == "production_moved" and result["tries"] < RETRIES:
                continue
        except Exception as exc:
            result.update(outcome="error", error=repr(exc), traceback=traceback.format_exc())
        break
    print("result " + json.dumps(result), flush=True)
"""


def worker_environment() -> dict[str, str]:
    """The test's environment on the test database. Tasks the signals enqueue go to a broker database
    no worker reads: the test calls what they would do (sync_aliases) itself."""
    redis_url = os.environ["REDIS_URL"]
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": redis_url.rsplit("/", 1)[0] + "/15",
        "PYTHONUNBUFFERED": "1",
    }


def planned_operations(versions: list[ModelVersion]) -> list[list[list]]:
    """OPERATIONS promotions and rollbacks in a fixed random mix, dealt to PROCESSES workers."""
    rng = random.Random(20261201)
    model_pk = versions[0].model_id
    operations = [
        ["promote", rng.choice(versions).pk] if rng.random() < 0.6 else ["rollback", model_pk]
        for _ in range(OPERATIONS)
    ]
    return [operations[index::PROCESSES] for index in range(PROCESSES)]


def run_workers(plans: list[list[list]], log_dir: Path, timeout: float = 90) -> list[list[dict]]:
    env = worker_environment()
    workers = []
    for index, plan in enumerate(plans):
        stderr = (log_dir / f"worker-{index}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(plan)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
        workers.append((process, stderr, log_dir / f"worker-{index}.log"))
    try:
        for process, _, log in workers:  # every worker has set Django up: start them together
            if process.stdout.readline().strip() != "ready":
                pytest.fail(f"a worker did not start:\n{log.read_text()[-4000:]}")
        for process, _, _ in workers:
            process.stdin.write("go\n")
            process.stdin.flush()
        deadline = time.monotonic() + timeout
        results = []
        for process, _, log in workers:
            out, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert process.returncode == 0, log.read_text()[-4000:]
            lines = [line.removeprefix("result ") for line in out.splitlines() if line.startswith("result ")]
            results.append([json.loads(line) for line in lines])
        return results
    finally:
        for process, stderr, _ in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
            stderr.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_promotions_and_rollbacks_from_several_processes_leave_one_consistent_production(
    register_tabular, tmp_path
):
    versions = [register_tabular(0), register_tabular(1), register_tabular(0)]
    model = versions[0].model
    services.promote_version(versions[0], reason="start")
    plans = planned_operations(versions)

    started = time.monotonic()
    results = run_workers(plans, tmp_path)
    elapsed = time.monotonic() - started
    attempts = [result for worker in results for result in worker]

    # Every attempt answered: a deployment, a smoke-test refusal with its row, or a registry refusal.
    assert len(attempts) == OPERATIONS, results
    assert [a for a in attempts if a["outcome"] == "error"] == []
    refusals = {a["code"] for a in attempts if a["outcome"] == "refused"}
    assert refusals <= {"registry_conflict", "production_moved"}, attempts

    # One production version, and the statuses say what the history says.
    history = list(Deployment.objects.filter(model=model).order_by("id"))
    succeeded = [d for d in history if d.succeeded]
    production = ModelVersion.objects.filter(model=model, status=ModelVersion.Status.PRODUCTION)
    assert production.count() == 1
    production = production.get()
    assert production.pk == succeeded[-1].to_version_id
    deployed = {d.to_version_id for d in succeeded}
    for version in ModelVersion.objects.filter(model=model):
        expected = "archived" if version.pk in deployed else "candidate"
        assert version.status == ("production" if version.pk == production.pk else expected), version

    # Each change of the pointer starts from where the previous one left it, in id order.
    assert succeeded[0].from_version_id is None
    for earlier, later in itertools.pairwise(succeeded):
        assert later.from_version_id == earlier.to_version_id, (earlier.pk, later.pk)
    # Replayed as a stack (a promotion pushes, a rollback pops), every rollback went back exactly one
    # step from the production it saw: none jumped over a promotion that slipped in meanwhile.
    stack = []
    for deployment in succeeded:
        if deployment.action == Deployment.Action.ROLLBACK:
            assert stack[-2:-1] == [deployment.to_version_id], (deployment.pk, stack)
            stack.pop()
        else:
            stack.append(deployment.to_version_id)
    # Each attempt that reached the pointer is in the history, each worker's in its own order.
    assert {a["deployment"] for a in attempts if a["outcome"] == "ok"} == {d.pk for d in succeeded[1:]}
    assert {a["deployment"] for a in attempts if a["outcome"] == "smoke_test_failed"} == {
        d.pk for d in history if not d.succeeded
    }
    for worker in results:
        mine = [a["deployment"] for a in worker if "deployment" in a]
        assert mine == sorted(mine)
    rollbacks = [d for d in succeeded if d.action == Deployment.Action.ROLLBACK]
    assert rollbacks and len(succeeded) - len(rollbacks) > 1, "the mix should have moved production both ways"

    # MLflow's alias follows once the alias task ran (here: called directly, no worker reads that broker).
    from mlflow import MlflowClient

    assert services.sync_aliases(model.name)["production"] == production.version
    config = mlops_config()
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)
    assert int(client.get_model_version_by_alias(model.name, "production").version) == production.version
    # Serving processes are told on commit: the generation is the latest successful deployment.
    assert serving_generation(model.name) == succeeded[-1].pk

    outcomes = sorted((a["kind"], a["outcome"], a.get("code", "")) for a in attempts)
    summary = {key: len(list(group)) for key, group in itertools.groupby(outcomes)}
    logger.info(
        "registry.race attempts=%d processes=%d seconds=%.1f outcomes=%s", OPERATIONS, PROCESSES, elapsed, summary
    )
    assert elapsed < 60
