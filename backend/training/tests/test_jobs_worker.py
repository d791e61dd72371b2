"""Training jobs run for real: a Celery worker subprocess on the test Redis, real tiny training
(YOLO from a yaml at imgsz 64 on a few synthetic images; XGBoost on the breast-cancer table), the
session's MLflow store checked with MlflowClient, and the registry rows the jobs leave behind.
"""

from datetime import timedelta
from io import StringIO

import pytest
from celery import current_app
from django.core.management import CommandError, call_command
from django.utils import timezone
from mlflow import MlflowClient
from rest_framework.test import APIClient

from backend.core.mlops_config import mlops_config
from backend.registry.models import ModelVersion
from backend.training import reaper, services
from backend.training.models import TrainingJob
from tests.factories import TrainingJobFactory
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

# A few tiny images, trained at their own size: seconds per epoch on two cores.
TINY_DATA = {"count": 24, "imgsz": 64, "seed": 3}
TINY_DETECTOR = {"imgsz": 64, "batch": 8, "plots": False, "data": TINY_DATA}


def mlflow_client() -> MlflowClient:
    config = mlops_config()
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)


def wait_for_end(job: TrainingJob, timeout: float = 240) -> TrainingJob:
    def ended():
        job.refresh_from_db()
        return job.is_final

    wait_until(ended, timeout=timeout, interval=0.5, what=f"training job #{job.pk} to end")
    return job


def staff_api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_detection_job_trains_registers_and_promotes(celery_worker_process, admin_user, unique_name):
    # auto_promote needs the registry's promote permission: the superuser holds it.
    response = staff_api(admin_user).post(
        "/api/v1/training-jobs/",
        {
            "kind": "detection",
            "model_name": unique_name,
            "params": {**TINY_DETECTOR, "epochs": 2},
            "auto_promote": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    job = wait_for_end(TrainingJob.objects.get(pk=response.json()["id"]))
    assert job.status == "succeeded", f"{job.error}\n{job.traceback}\n{job.log_tail[-3000:]}"

    # The row: progress, one history point per epoch, timings, the worker that ran it.
    assert (job.progress, job.epoch, job.epochs) == (100.0, 2, 2)
    assert [point["epoch"] for point in job.history] == [1, 2]
    assert all("train/box_loss" in point and "mAP50" in point for point in job.history)
    assert {"mAP50", "mAP50-95", "precision", "recall"} <= set(job.metrics)
    assert job.started_at <= job.heartbeat_at <= job.finished_at
    assert job.worker_hostname.startswith("test-worker-")
    assert job.error == "" and job.traceback == ""
    assert "training.run_ended" in job.log_tail

    # The registered version, its lineage, and auto-promotion through the registry's smoke test.
    version = job.model_version
    assert version.model.name == unique_name
    assert version.status == ModelVersion.Status.PRODUCTION
    assert job.promotion_error == ""
    assert version.mlflow_run_id == job.mlflow_run_id
    assert version.data_version == job.data_version != ""
    assert version.git_commit and version.config_hash
    assert version.package_versions["ultralytics"]
    assert {"onnx", "weights", "reference", "data_manifest"} <= set(version.artifacts)
    assert job.comparison["verdict"] == "no_baseline" == version.comparison["verdict"]
    deployment = version.deployments_to.get()
    assert (deployment.actor, deployment.system) == (admin_user, False)

    # The MLflow run, read with MLflow's own client.
    run = mlflow_client().get_run(job.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2" and run.data.params["imgsz"] == "64"
    assert run.data.tags["modelyard.data_version"] == job.data_version
    assert run.data.tags["modelyard.config_hash"] == version.config_hash
    assert run.data.tags["modelyard.git_commit"] == version.git_commit
    assert "test/mAP50" in run.data.metrics
    box_loss = mlflow_client().get_metric_history(job.mlflow_run_id, "train/box_loss")
    assert {0, 1} <= {metric.step for metric in box_loss}  # one point per epoch (and the final evaluation)


def test_cancelling_a_running_job_stops_training_and_kills_the_run(celery_worker_process, staff_user, unique_name):
    job = services.start_job(
        "detection", model_name=unique_name, params={**TINY_DETECTOR, "epochs": 200}, user=staff_user
    )

    def training_started():
        job.refresh_from_db()
        return job.status == "running" and job.epoch >= 1 and job.mlflow_run_id

    wait_until(training_started, timeout=180, interval=0.3, what="the first epoch")
    response = staff_api(staff_user).post(f"/api/v1/training-jobs/{job.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["cancel_requested"] is True

    job = wait_for_end(job, timeout=120)
    assert job.status == "cancelled", f"{job.error}\n{job.traceback}"
    assert job.epoch < 200 and job.model_version is None
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()
    assert mlflow_client().get_run(job.mlflow_run_id).info.status == "KILLED"


def test_a_failing_job_ends_failed_with_its_traceback(celery_worker_process, tmp_path, unique_name):
    not_a_dataset = tmp_path / "notes"
    not_a_dataset.mkdir()
    (not_a_dataset / "readme.txt").write_text("no images, no table")
    job = wait_for_end(services.start_job("tabular", model_name=unique_name, dataset=str(not_a_dataset)))
    assert job.status == "failed"
    assert job.error_code == "unsupported_layout"
    assert "no supported layout" in job.error
    assert "Traceback (most recent call last)" in job.traceback and "InvalidInput" in job.traceback
    assert job.finished_at is not None and job.model_version is None


def test_train_command_waits_with_a_progress_bar(celery_worker_process, unique_name, tmp_path):
    out, err = StringIO(), StringIO()
    call_command(
        "train", kind="tabular", epochs=12, model_name=unique_name, promote=True, wait=True, stdout=out, stderr=err
    )
    job = TrainingJob.objects.get(model_name=unique_name)
    assert job.status == "succeeded"
    assert f"Job #{job.pk} succeeded" in out.getvalue()
    assert "v1.0" in out.getvalue()
    assert job.model_version.status == "production"
    assert job.history and job.history[-1]["epoch"] <= 12
    assert "val/logloss" in job.history[-1]
    run = mlflow_client().get_run(job.mlflow_run_id)
    assert run.data.params["n_estimators"] == "12"
    assert run.data.tags["modelyard.data_version"] == job.model_version.data_version

    # A second job on the same data spec reuses the prepared dataset and is compared with production.
    again = wait_for_end(services.start_job("tabular", model_name=unique_name, params={"n_estimators": 8}))
    assert again.status == "succeeded", again.traceback
    assert (again.data_version, again.dataset_path) == (job.data_version, job.dataset_path)
    assert (again.model_version.semantic_label, again.model_version.status) == ("v1.1", "candidate")
    assert again.comparison["baseline_version"] == job.model_version.version
    assert again.comparison["verdict"] in ("better", "worse", "equal")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "file.bin").write_bytes(b"\0")
    with pytest.raises(CommandError, match="failed"):
        call_command("train", kind="tabular", dataset=str(broken), wait=True, stdout=StringIO(), stderr=StringIO())


def test_search_job_registers_its_best_trial(celery_worker_process, unique_name):
    job = services.start_job(
        "search", model_name=unique_name, params={"target": "tabular", "trials": 2, "n_estimators": 10}
    )
    job = wait_for_end(job)
    assert job.status == "succeeded", f"{job.error}\n{job.traceback}"
    assert [point["epoch"] for point in job.history] == [1, 2]  # one point per trial
    assert all("trial_val_loss" in point and "best_val_loss" in point for point in job.history)
    assert job.metrics["trials"] == 2 and {"accuracy", "roc_auc"} <= set(job.metrics)
    client = mlflow_client()
    parent = client.get_run(job.mlflow_run_id)  # the job links the search's parent run
    assert parent.data.tags["modelyard.search"] == "parent"
    assert parent.info.status == "FINISHED"
    best = client.get_run(job.model_version.mlflow_run_id)  # the version is the best trial's
    assert best.data.tags["mlflow.parentRunId"] == job.mlflow_run_id
    assert job.model_version.model.kind == "tabular"


def test_reaper_fails_jobs_the_worker_no_longer_runs_and_resends_lost_messages(celery_worker_process, tmp_path):
    hostname = next(iter(current_app.control.ping(timeout=2)[0]))
    quiet = timezone.now() - timedelta(seconds=200)
    orphan = TrainingJobFactory(
        model_name="orphan", running=True, since=quiet, worker_hostname=hostname, celery_task_id="not-running-anywhere"
    )
    vanished = TrainingJobFactory(
        model_name="vanished", running=True, since=quiet, worker_hostname="trainer@no-such-host", celery_task_id="x"
    )
    # A queued job whose message the broker lost (never sent here): the reaper sends it again.
    bad_dir = tmp_path / "empty"
    bad_dir.mkdir()
    lost = TrainingJobFactory(
        model_name="lost", dataset=str(bad_dir), enqueued_at=timezone.now() - timedelta(hours=1),
        celery_task_id="lost-message", enqueue_count=1,
    )  # fmt: skip

    result = reaper.reap_stale_jobs()
    assert sorted(result.failed) == sorted([orphan.pk, vanished.pk])
    assert result.requeued == [lost.pk]
    orphan.refresh_from_db()
    vanished.refresh_from_db()
    assert (orphan.status, orphan.error_code) == ("failed", "worker_lost")
    assert "no longer running" in orphan.error
    assert "is gone" in vanished.error

    lost = wait_for_end(lost, timeout=60)  # the re-sent message reached the worker, which ran the job
    assert lost.enqueue_count == 2 and lost.celery_task_id != "lost-message"
    assert lost.status == "failed" and lost.error_code == "unsupported_layout"
