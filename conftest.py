"""Fixtures shared by every app's tests: people, API clients, a real Celery worker, tiny real models
registered and served through the registry (tests.factories builds them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory, VersionFactory
from tests.helpers import wait_for_celery_worker
from tests.web import database_url as test_database_url

ROOT = Path(__file__).resolve().parent


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root", superuser=True)


@pytest.fixture
def staff_user(db):
    return UserFactory(username="staff", staff=True)


@pytest.fixture
def plain_user(db):
    return UserFactory(username="alice")


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def admin_api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real `celery -A backend worker` process on the test broker and the test database.

    Tests that use it must commit their rows (the `transactional_db` fixture) so the worker sees them.
    """
    from backend import celery_app

    with django_db_blocker.unblock():
        database_url = test_database_url()
    celery_app.control.purge()  # tasks queued by earlier tests refer to rows that are gone
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable, "-m", "celery", "-A", "backend", "worker",
        "--queues", "default,batch,training,monitoring",
        "--concurrency", "2",
        "--pool", "prefork",
        "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--hostname", f"test-worker-{os.getpid()}@%h",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for_celery_worker(process, log_path)
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """Tiny real models, built once per session: three YOLO detectors and two XGBoost models."""
    from tests.models import build_detector, build_tabular

    directory = tmp_path_factory.mktemp("model-files")
    return {
        "detectors": [build_detector(directory, seed=seed) for seed in (1, 2, 3)],
        "tabular": [build_tabular(directory, seed=seed) for seed in (1, 2)],
    }


@pytest.fixture(scope="session")
def classifier_model(tmp_path_factory):
    """A tiny real YOLO image classifier (3 classes), built once per session."""
    from tests.models import build_classifier

    return build_classifier(tmp_path_factory.mktemp("classifier-files"))


@pytest.fixture
def unique_name(request):
    """A model name no other test uses (the MLflow store lives for the whole session)."""
    import re
    import uuid

    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(autouse=True)
def generous_anon_rate(settings):
    """Tests post many anonymous requests; the throttle has its own tests with a tight rate."""
    settings.API_ANON_RATE = settings.API_USER_RATE = settings.API_READBACK_RATE = "100000/min"


@pytest.fixture
def register_detector(model_files, unique_name):
    """Register detector number `index` (0-2) under this test's model name."""

    def register(index: int, name: str | None = None, **metrics):
        return VersionFactory(
            name=name or unique_name,
            files=model_files["detectors"][index],
            metrics=metrics or {"mAP50": 0.5 + index / 10},
        )

    return register


@pytest.fixture
def register_tabular(model_files, unique_name):
    """Register tabular model number `index` (0-1) under this test's model name."""

    def register(index: int, name: str | None = None, **metrics):
        return VersionFactory(
            name=name or unique_name,
            kind="tabular",
            files=model_files["tabular"][index],
            metrics=metrics or {"accuracy": 0.9 + index / 100},
        )

    return register


@pytest.fixture(scope="session")
def trained_detector(tmp_path_factory):
    """A tiny YOLO trained on synthetic shapes (finds boxes), with held-out images of shapes."""
    from tests.support import train_tiny_detector

    return train_tiny_detector(tmp_path_factory.mktemp("trained-detector"))


@pytest.fixture
def serve_detector(model_files, unique_name, settings):
    """Register and promote detector number `index` (0-2) as this test's default detection model."""
    settings.DEFAULT_DETECTION_MODEL = unique_name

    def serve(index: int = 0, name: str | None = None):
        return VersionFactory(
            name=name or unique_name, files=model_files["detectors"][index], metrics={}, promoted=True
        )

    return serve


@pytest.fixture
def serve_classifier(classifier_model, unique_name, settings):
    """Register and promote the tiny classifier (cat, dog, bird) as this test's default classification model."""
    settings.DEFAULT_CLASSIFICATION_MODEL = unique_name

    def serve(name: str | None = None):
        return VersionFactory(
            name=name or unique_name, kind="classification", files=classifier_model, metrics={}, promoted=True
        )

    return serve


@pytest.fixture
def serve_trained(trained_detector, unique_name, settings):
    """Register and promote the trained detector (it finds the shapes) as this test's default detector."""
    settings.DEFAULT_DETECTION_MODEL = unique_name

    def serve(name: str | None = None):
        return VersionFactory(name=name or unique_name, files=trained_detector.files, promoted=True)

    return serve


@pytest.fixture
def serve_tabular(model_files, unique_name, settings):
    """Register and promote tabular model number `index` (0-1) as this test's default tabular model."""
    settings.DEFAULT_TABULAR_MODEL = unique_name

    def serve(index: int = 0):
        return VersionFactory(
            name=unique_name, kind="tabular", files=model_files["tabular"][index], metrics={"accuracy": 0.95},
            promoted=True,
        )  # fmt: skip

    return serve


@pytest.fixture
def eager():
    """Tasks run in this process when sent (at commit), not on a worker that may be running for other tests."""
    from backend import celery_app

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture(scope="session")
def breast_cancer():
    """scikit-learn's bundled breast-cancer table, features only: the tabular model's world."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame.drop(columns=["target"])


@pytest.fixture
def tabular_with_reference(model_files, breast_cancer, tmp_path, unique_name, settings):
    """The tiny XGBoost model, registered with a training reference (features and probabilities) and
    promoted, with drift checked over its latest 200 predictions (at least 100)."""
    from dataclasses import replace

    import xgboost as xgb

    from backend.monitoring.models import DriftSettings
    from mlops.training.xgb import PROBABILITY_PREFIX

    files = model_files["tabular"][0]
    booster = xgb.Booster()
    booster.load_model(str(files.model))
    reference = breast_cancer.sample(300, random_state=0).reset_index(drop=True)
    positive = booster.predict(xgb.DMatrix(reference, feature_names=list(reference.columns)))
    reference[f"{PROBABILITY_PREFIX}{files.class_names[0]}"] = 1 - positive
    reference[f"{PROBABILITY_PREFIX}{files.class_names[1]}"] = positive
    path = tmp_path / "reference.parquet"
    reference.to_parquet(path, index=False)

    settings.DEFAULT_TABULAR_MODEL = unique_name
    version = VersionFactory(name=unique_name, kind="tabular", files=replace(files, reference=path), promoted=True)
    DriftSettings.objects.create(model=version.model, window_predictions=200, min_samples=100)
    return version
