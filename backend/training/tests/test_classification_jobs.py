"""Image classification training jobs: asked for through the API, the service and the admin, trained
for real by the Celery training worker (a YOLO classifier from its yaml at 32 px, two epochs, on a few
images in one folder per class), registered with ONNX and lineage, cancelled, or refused: a bad
request at the door (400 naming the field), a bad dataset on the job (its error code).
"""

import json
import shutil
from pathlib import Path

import pytest
from django.urls import reverse
from PIL import Image

from backend.registry.models import ModelVersion, RegisteredModel
from backend.training import services
from backend.training.datasets import prepared_dataset
from backend.training.job_requests import steps_param
from backend.training.models import TrainingJob
from backend.training.tests.test_jobs_worker import mlflow_client, staff_api, wait_for_end
from mlops.data.layout import MANIFEST_FILE
from mlops.data.synthetic import ClassificationSpec, generate_classification
from mlops.exceptions import InvalidInput
from tests.factories import TrainingJobFactory
from tests.helpers import wait_until

JOBS_URL = "/api/v1/training-jobs/"
CLASSES = ["circle", "square", "triangle"]
# Ten images a class (validation's minimum), trained at 32 px: a couple of seconds an epoch on two cores.
TINY_CLASSIFIER = {"imgsz": 32, "batch": 8, "plots": False}


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory) -> Path:
    """A folder as people bring one: `circle/`, `square/`, `triangle/`, ten small images in each."""
    folder = generate_classification(
        tmp_path_factory.mktemp("class-folders") / "shapes", ClassificationSpec(per_class=10, imgsz=32, seed=1)
    )
    (folder / "dataset.json").unlink()  # our own layout file: a folder people bring has none
    assert sorted(path.name for path in folder.iterdir()) == CLASSES
    return folder


@pytest.fixture
def one_class_folder(class_folders, tmp_path) -> Path:
    folder = tmp_path / "only-circles"
    shutil.copytree(class_folders / "circle", folder / "circle")
    return folder


@pytest.fixture
def detection_folder(tmp_path) -> Path:
    """A YOLO detection layout (images/ + labels/): boxes, not one folder per class."""
    folder = tmp_path / "yolo"
    for index in range(3):
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "labels").mkdir(exist_ok=True)
        Image.new("RGB", (32, 32), (40 * index, 90, 160)).save(folder / "images" / f"{index}.png")
        (folder / "labels" / f"{index}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    return folder


# -- trained by the worker -------------------------------------------------------------------------
@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_classification_job_trains_registers_and_promotes(admin_user, unique_name, class_folders):
    response = staff_api(admin_user).post(
        JOBS_URL,
        {
            "kind": "classification",
            "model_name": unique_name,
            "dataset": f"folder:{class_folders}",
            "params": {**TINY_CLASSIFIER, "epochs": 2},
            "auto_promote": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    job = wait_for_end(TrainingJob.objects.get(pk=response.json()["id"]), timeout=180)
    assert job.status == "succeeded", f"{job.error}\n{job.traceback}\n{job.log_tail[-3000:]}"

    # The row: one history point per epoch with the top-1 accuracy, the test split's metrics at the end.
    assert (job.progress, job.epoch, job.epochs) == (100.0, 2, 2)
    assert job.progress_text() == "epoch 2 of 2, 100%"
    assert [point["epoch"] for point in job.history] == [1, 2]
    assert all({"top1", "top5", "train/loss", "val/loss"} <= set(point) for point in job.history)
    assert all(0.0 <= point["top1"] <= 1.0 for point in job.history)
    assert {"top1", "top5", *(f"accuracy/{name}" for name in CLASSES)} <= set(job.metrics)
    assert job.error == "" and job.traceback == ""

    # The folder was ingested as a classification set: one folder per class, split class by class.
    manifest = json.loads((Path(job.dataset_path) / MANIFEST_FILE).read_text())
    assert (manifest["kind"], manifest["data_version"]) == ("classification", job.data_version)
    assert sorted(manifest["class_names"]) == CLASSES
    assert sum(manifest["counts"].values()) == 30

    # The registered version: a classifier with its ONNX file, lineage, promoted through its smoke test.
    version = job.model_version
    assert (version.model.name, version.model.kind) == (unique_name, RegisteredModel.Kind.CLASSIFICATION)
    assert version.model.class_names == CLASSES
    assert version.status == ModelVersion.Status.PRODUCTION and job.promotion_error == ""
    assert {"onnx", "weights", "reference", "data_manifest"} <= set(version.artifacts)
    assert version.artifacts["onnx"]["filename"].endswith(".onnx") and len(version.artifacts["onnx"]["sha256"]) == 64
    assert version.mlflow_run_id == job.mlflow_run_id
    assert version.data_version == job.data_version != ""
    assert version.git_commit and version.config_hash
    assert version.package_versions["ultralytics"]
    assert version.metrics["top1"] == job.metrics["top1"]
    assert job.comparison["verdict"] == "no_baseline" == version.comparison["verdict"]

    # The MLflow run, read with MLflow's own client.
    client = mlflow_client()
    run = client.get_run(job.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2" and run.data.params["imgsz"] == "32"
    assert run.data.tags["modelyard.kind"] == "classification"
    assert run.data.tags["modelyard.data_version"] == job.data_version
    assert run.data.tags["modelyard.config_hash"] == version.config_hash
    assert run.data.tags["modelyard.git_commit"] == version.git_commit
    assert "test/top1" in run.data.metrics
    top1 = client.get_metric_history(job.mlflow_run_id, "metrics/accuracy_top1")
    assert {0, 1} <= {metric.step for metric in top1}  # one point per epoch (and the final evaluation)


@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_cancelling_a_running_classification_job_stops_it(staff_user, unique_name, class_folders):
    # patience as high as the epochs: early stopping must not end the job before the cancel does.
    params = {**TINY_CLASSIFIER, "epochs": 200, "patience": 200}
    job = services.start_job(
        "classification", model_name=unique_name, dataset=f"folder:{class_folders}", params=params, user=staff_user
    )

    def training_started():
        job.refresh_from_db()
        return job.status == "running" and job.epoch >= 1 and job.mlflow_run_id

    wait_until(training_started, timeout=120, interval=0.3, what="the first epoch")
    response = staff_api(staff_user).post(f"{JOBS_URL}{job.pk}/cancel/")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True

    job = wait_for_end(job, timeout=120)
    assert job.status == "cancelled", f"{job.error}\n{job.traceback}"
    assert job.epoch < 200 and job.model_version is None
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()
    assert mlflow_client().get_run(job.mlflow_run_id).info.status == "KILLED"


@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_dataset_that_cannot_train_a_classifier_fails_the_job_with_its_code(
    unique_name, one_class_folder, detection_folder
):
    one_class = services.start_job("classification", model_name=unique_name, dataset=str(one_class_folder))
    boxes = services.start_job("classification", model_name=unique_name, dataset=f"folder:{detection_folder}")

    one_class = wait_for_end(one_class, timeout=60)
    assert (one_class.status, one_class.error_code) == ("failed", "data_invalid")
    assert "single_class" in one_class.error  # validation's finding: a classifier needs two classes

    boxes = wait_for_end(boxes, timeout=60)
    assert (boxes.status, boxes.error_code) == ("failed", "kind_mismatch")
    assert "not one folder per class" in boxes.error
    for job in (one_class, boxes):
        assert "Traceback (most recent call last)" in job.traceback
        assert job.finished_at is not None and job.model_version is None
    assert not RegisteredModel.objects.filter(name=unique_name).exists()


# -- refused at the door ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_bad_classification_requests_name_the_bad_field(staff_user):
    RegisteredModel.objects.create(name="already-a-detector", kind="detection")
    staff = staff_api(staff_user)
    cases = [
        ({"kind": "classification", "params": {"epoch": 3}}, "params", "epoch"),  # a typo, never a default
        ({"kind": "classification", "params": {"imgsz": 50}}, "params", "multiple of 32"),
        ({"kind": "classification", "params": {"model": "yolo26n.yaml"}}, "params", "not a classification"),
        ({"kind": "classification", "params": {"reference_conf": 0.3}}, "params", "reference_conf"),  # a detector's
        ({"kind": "classification", "params": {"data": {"count": 9}}}, "params", "count"),  # per_class, here
        ({"kind": "classification", "params": {"validate": {"min_class_images": 0}}}, "params", "min_class_images"),
        ({"kind": "classification", "dataset": "synthetic:shapes"}, "dataset", "synthetic:classification"),
        ({"kind": "detection", "dataset": "synthetic:classification"}, "dataset", "synthetic:shapes"),
        ({"kind": "classification", "model_name": "already-a-detector"}, "model_name", "detection model"),
        ({"kind": "search", "params": {"target": "classification"}}, "params", "cannot tune a classification"),
    ]
    for payload, field, says in cases:
        response = staff.post(JOBS_URL, payload, format="json")
        assert response.status_code == 400, (payload, response.content)
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert list(error["fields"]) == [field], payload
        assert error["message"].startswith(f"{field}: ") and says in error["message"], (payload, error["message"])
    assert TrainingJob.objects.count() == 0

    fine = staff.post(JOBS_URL, {"kind": "classification", "params": {"data": {"per_class": 12}}}, format="json")
    assert fine.status_code == 201, fine.content
    body = fine.json()
    assert (body["kind"], body["model_name"], body["dataset"]) == (
        "classification",
        "shapes-classifier",  # DEFAULT_CLASSIFICATION_MODEL
        "synthetic:classification",  # params.yaml's data.classification source
    )
    assert staff.get(JOBS_URL, {"kind": "classification"}).json()["count"] == 1


@pytest.mark.django_db
def test_the_admin_starts_a_classification_job_with_its_shortcuts(client, admin_user):
    client.force_login(admin_user)
    add_url = reverse("admin:training_trainingjob_add")
    assert 'value="classification"' in client.get(add_url).content.decode()
    response = client.post(add_url, {"kind": "classification", "params": "{}", "epochs": 3, "imgsz": 32})
    assert response.status_code == 302, response.content.decode()[:3000]
    job = TrainingJob.objects.get()
    assert (job.kind, job.model_name) == ("classification", "shapes-classifier")
    assert job.dataset == "synthetic:classification"
    assert job.params == {"epochs": 3, "imgsz": 32}
    assert steps_param("classification", {}) == "epochs"


@pytest.mark.django_db
def test_a_classification_job_page_counts_epochs(client, staff_user):
    job = TrainingJobFactory(
        kind="classification",
        dataset="synthetic:classification",
        status="running",
        epoch=4,
        epochs=20,
        progress=20.0,
        history=[{"epoch": 4, "top1": 0.5}],
    )
    client.force_login(staff_user)
    html = client.get(reverse("training:job-detail", args=[job.pk])).content.decode()
    assert "Classification (YOLO)" in html
    assert "epoch 4 of 20" in html


# -- the data a classifier trains on ---------------------------------------------------------------
def test_one_folder_per_class_is_prepared_as_the_kind_the_job_trains(class_folders, tmp_path):
    """The same folder is a classification set for a classifier and a detection set for a detector, each
    prepared once; a prepared set of the other kind is refused."""
    source = f"folder:{class_folders}"
    classes = prepared_dataset(source, tmp_path, kind="classification")
    boxes = prepared_dataset(source, tmp_path, kind="detection")
    assert (classes.kind, boxes.kind) == ("classification", "detection")
    assert classes.path != boxes.path and classes.data_version != boxes.data_version
    assert prepared_dataset(source, tmp_path, kind="classification").path == classes.path  # reused

    with pytest.raises(InvalidInput) as refused:
        prepared_dataset(str(boxes.path), tmp_path, kind="classification")
    assert refused.value.code == "kind_mismatch"
