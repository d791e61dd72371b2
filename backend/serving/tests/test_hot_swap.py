"""Hot swap under load: concurrent requests while versions are promoted and rolled back, a version that
fails to load, models loaded at web worker start-up, and a serving path free of torch, ultralytics,
xgboost and mlflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from rest_framework.test import APIClient

from backend.detection.models import Detection
from backend.registry.models import ModelVersion, RegisteredModel
from backend.registry.services import promote_version, rollback_model
from backend.serving.loading import model_server, preload_default_models
from mlops.registry.artifacts import local_path_of
from tests.factories import VersionFactory
from tests.helpers import wait_until
from tests.support import image_bytes, synthetic_photo
from tests.web import database_url, gunicorn_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[3]


def production_windows(initial: int, changes: list[tuple[float, float, int]], end: float) -> dict[int, list]:
    """Each version's production windows, widened to cover the whole promote/rollback call on both ends.

    A change takes effect somewhere inside its call, so the old version may be production until the
    call returns and the new one from the moment the call starts.
    """
    windows: dict[int, list[tuple[float, float]]] = {}
    current, since = initial, float("-inf")
    for started, finished, version in changes:
        windows.setdefault(current, []).append((since, finished))
        current, since = version, started
    windows.setdefault(current, []).append((since, end))
    return windows


def test_promotions_and_rollbacks_under_concurrent_load(live_server, model_files, unique_name, settings):
    versions = [
        VersionFactory(name=unique_name, kind="detection", files=files, metrics={})
        for files in model_files["detectors"]
    ]
    promote_version(versions[0])
    url = f"{live_server.url}/api/v1/detections/"
    payload = image_bytes(synthetic_photo(96, 72), "PNG")
    assert requests.post(url, files={"image": ("warm.png", payload)}, data={"model": unique_name}).status_code == 201

    results: list[tuple[float, float, int, int | None]] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = session.post(
                        url, files={"image": ("x.png", payload)}, data={"model": unique_name}, timeout=60
                    )
                    status = response.status_code
                    version = response.json()["model"]["version"] if status == 201 else None
                except requests.RequestException:
                    status, version = -1, None
                results.append((started, time.monotonic(), status, version))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    model = RegisteredModel.objects.get(name=unique_name)
    changes: list[tuple[float, float, int]] = []
    plan = ["promote:1", "rollback", "promote:2", "rollback", "promote:2", "promote:1", "rollback", "rollback"] * 2
    for step in plan:
        time.sleep(0.15)
        started = time.monotonic()
        if step == "rollback":
            deployment = rollback_model(model, reason="test")
        else:
            deployment = promote_version(ModelVersion.objects.get(pk=versions[int(step[-1])].pk), reason="test")
        changes.append((started, time.monotonic(), deployment.to_version.version))
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    end = time.monotonic()

    assert len(results) > 50
    failed = [r for r in results if r[2] != 201]
    assert failed == [], f"{len(failed)} of {len(results)} requests failed: {failed[:5]}"
    windows = production_windows(versions[0].version, changes, end)
    outside = [
        (started, finished, version)
        for started, finished, _, version in results
        if not any(lo <= finished and started <= hi for lo, hi in windows.get(version, []))
    ]
    assert outside == [], f"{len(outside)} answers came from a version not in production during the request"
    assert {r[3] for r in results} == {v.version for v in versions}  # every version answered at some point
    final = ModelVersion.objects.get(model=model, status="production").version
    answer = requests.post(url, files={"image": ("y.png", payload)}, data={"model": unique_name})
    assert answer.json()["model"]["version"] == final
    # The server writes each prediction log after its answer: let the last ones land before the
    # test's database is emptied, or that flush races the server's inserts.
    logged = Detection.objects.filter(model_version__model__name=unique_name)
    wait_until(lambda: logged.count() >= len(results) + 1, timeout=60, what="the prediction log of every answer")


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(model_files, unique_name, settings):
    settings.DEFAULT_DETECTION_MODEL = unique_name
    old = VersionFactory(
        name=unique_name, kind="detection", files=model_files["detectors"][0], metrics={}, promoted=True
    )
    client = APIClient()
    photo = image_bytes(synthetic_photo(64, 48))
    assert client.post("/api/v1/detections/", {"image": _file(photo)}).json()["model"]["version"] == old.version

    new = VersionFactory(
        name=unique_name, kind="detection", files=model_files["detectors"][1], metrics={}, promoted=True
    )  # passes its smoke test
    stored = local_path_of(new.artifacts["onnx"]["uri"])
    stored.write_bytes(b"not an onnx model any more" + stored.read_bytes()[:100])  # corrupted after promotion

    answers = [client.post("/api/v1/detections/", {"image": _file(photo)}) for _ in range(3)]

    assert [a.status_code for a in answers] == [201, 201, 201]
    assert {a.json()["model"]["version"] for a in answers} == {old.version}
    new.refresh_from_db()
    assert new.status == "production"
    assert "sha256" in new.load_error and new.load_error_at is not None
    assert ModelVersion.objects.get(pk=old.pk).load_error == ""
    status = model_server().status()[unique_name]
    assert status["version"].version == old.version and status["failed_attempts"] >= 1

    # A rollback to the old version is served at once; the failure stays recorded on the bad version.
    rollback_model(new.model, reason="bad artifact")
    assert client.post("/api/v1/detections/", {"image": _file(photo)}).json()["model"]["version"] == old.version
    wait_until(lambda: model_server().status()[unique_name]["failed_attempts"] == 0, timeout=10, what="recovery")


def test_preloading_loads_the_default_models_before_any_request(model_files, classifier_model, unique_name, settings):
    settings.DEFAULT_DETECTION_MODEL = unique_name
    settings.DEFAULT_TABULAR_MODEL = f"{unique_name}-tab"
    settings.DEFAULT_CLASSIFICATION_MODEL = f"{unique_name}-cls"
    detector = VersionFactory(
        name=unique_name, kind="detection", files=model_files["detectors"][0], metrics={}, promoted=True
    )
    tabular = VersionFactory(
        name=f"{unique_name}-tab", kind="tabular", files=model_files["tabular"][0], metrics={}, promoted=True
    )
    classifier = VersionFactory(
        name=f"{unique_name}-cls", kind="classification", files=classifier_model, metrics={}, promoted=True
    )
    assert unique_name not in model_server().status()

    preload_default_models().join(timeout=120)

    status = model_server().status()
    assert status[unique_name]["version"].version == detector.version
    assert status[f"{unique_name}-tab"]["version"].version == tabular.version
    assert status[f"{unique_name}-cls"]["version"].version == classifier.version


def test_a_web_worker_started_from_the_procfile_config_loads_models_at_start(model_files, unique_name, tmp_path):
    """gunicorn.conf.py's post_worker_init: the worker loads both models with no request made."""
    detector = VersionFactory(
        name=unique_name, kind="detection", files=model_files["detectors"][0], metrics={}, promoted=True
    )
    VersionFactory(
        name=f"{unique_name}-tab", kind="tabular", files=model_files["tabular"][0], metrics={}, promoted=True
    )
    env = {"DEFAULT_DETECTION_MODEL": unique_name, "DEFAULT_TABULAR_MODEL": f"{unique_name}-tab", "LOG_LEVEL": "INFO"}
    with gunicorn_server(tmp_path / "gunicorn.log", env=env) as server:

        def both_tried() -> bool:
            text = server.log.read_text(errors="replace")
            return server.process.poll() is not None or text.count("serving.preload") >= 2

        wait_until(both_tried, timeout=120, what="the worker to preload both models")
        text = server.log.read_text(errors="replace")
        assert server.process.poll() is None, text[-3000:]
        assert f"serving.preloaded model={unique_name} version={unique_name} v1.0 (#{detector.version})" in text
        assert f"serving.preloaded model={unique_name}-tab " in text
        photo = image_bytes(synthetic_photo(64, 48))
        answer = requests.post(f"{server.url}/api/v1/detections/", files={"image": ("p.png", photo)}, timeout=60)
        assert answer.status_code == 201, answer.text
        assert answer.json()["model"]["version"] == detector.version


def _file(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("x.png", data)


SERVING_PROBE = """
import json, os, sys, time
os.environ["DJANGO_SETTINGS_MODULE"] = "backend.config.settings"
started = time.perf_counter()
import django
django.setup()
from django.test import Client
client = Client()
image = open(sys.argv[1], "rb").read()
from django.core.files.uploadedfile import SimpleUploadedFile
detection = client.post("/api/v1/detections/", {"image": SimpleUploadedFile("x.png", image), "model": sys.argv[2]})
scored = client.post(
    "/api/v1/tabular/predictions/",
    json.dumps({"records": [json.loads(sys.argv[4])], "model": sys.argv[3]}),
    content_type="application/json",
)
heavy = sorted(m for m in ("torch", "ultralytics", "xgboost", "mlflow", "sklearn", "pandas") if m in sys.modules)
print(json.dumps({"status": [detection.status_code, scored.status_code], "heavy": heavy,
                  "body": [detection.json(), scored.json()]}))
"""


def test_serving_path_imports_no_training_frameworks(model_files, unique_name, tmp_path):
    VersionFactory(name=unique_name, kind="detection", files=model_files["detectors"][0], metrics={}, promoted=True)
    tabular = model_files["tabular"][0]
    VersionFactory(name=f"{unique_name}-tab", kind="tabular", files=tabular, metrics={}, promoted=True)
    image = tmp_path / "probe.png"
    image.write_bytes(image_bytes(synthetic_photo(64, 64)))
    record = {feature["name"]: feature["mean"] for feature in tabular.feature_schema}
    env = {**os.environ, "DATABASE_URL": database_url(), "API_ANON_RATE": "1000/min"}

    result = subprocess.run(
        [sys.executable, "-c", SERVING_PROBE, str(image), unique_name, f"{unique_name}-tab", json.dumps(record)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["status"] == [201, 200], probe["body"]
    assert probe["heavy"] == []


@pytest.mark.parametrize(("slots", "expected"), [(1, 1), (2, 2), (0, 4)])
def test_concurrent_predictions_per_model_follow_the_setting(settings, model_files, slots, expected):
    from backend.serving.services import inference_slot
    from mlops.inference.loader import load_predictor

    settings.SERVING_CONCURRENT_PREDICTIONS = slots
    files = model_files["detectors"][0]
    predictor = load_predictor("detection", files.files(), files.metadata)
    inside, peak, lock = 0, 0, threading.Lock()
    barrier = threading.Barrier(4)

    def request() -> None:
        nonlocal inside, peak
        barrier.wait()
        with inference_slot(predictor):
            with lock:
                inside += 1
                peak = max(peak, inside)
            predictor.predict(np.zeros((64, 64, 3), np.uint8))
            time.sleep(0.2)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == expected


def test_a_model_that_cannot_load_tells_only_staff_why(model_files, unique_name, settings, admin_user):
    settings.DEFAULT_DETECTION_MODEL = unique_name
    version = VersionFactory(
        name=unique_name, kind="detection", files=model_files["detectors"][1], metrics={}, promoted=True
    )
    stored = local_path_of(version.artifacts["onnx"]["uri"])
    stored.write_bytes(b"not an onnx model any more")
    photo = image_bytes(synthetic_photo(64, 48))

    anonymous = APIClient().post("/api/v1/detections/", {"image": _file(photo)})
    assert anonymous.status_code == 503
    body = anonymous.content.decode()
    assert anonymous.json()["error"]["code"] == "model_unavailable"
    assert str(stored.parent) not in body and "sha256" not in body and "reason" not in anonymous.json()["error"]

    staff = APIClient()
    staff.force_authenticate(admin_user)
    answer = staff.post("/api/v1/detections/", {"image": _file(photo)})
    assert answer.status_code == 503 and "sha256" in answer.json()["error"]["reason"]
