"""The production engines on real servers started here: media in an S3 bucket (moto's standalone
server), an MLflow tracking server (`mlflow server`: PostgreSQL store in the PostgreSQL pass, else a
SQLite file; artifacts proxied to S3), a gunicorn web process and a Celery worker started the way
production starts them, and the DVC remote on S3.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from django.conf import settings
from django.test import override_settings
from PIL import Image

from backend.core.mlops_config import mlops_config
from backend.detection.models import Detection
from mlops.config import MlopsConfig, library_env
from mlops.registry.entities import Lineage
from mlops.registry.mlflow_store import MlflowModelRegistry
from tests.factories import VersionFactory
from tests.helpers import wait_until
from tests.services import (
    S3_CREDENTIALS,
    create_postgres_database,
    s3_client,
    start_mlflow_server,
    start_s3,
)
from tests.support import image_bytes, synthetic_photo
from tests.web import database_url, gunicorn_server

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MEDIA, ARTIFACTS, DVC = "media", "mlflow", "dvc"
MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_S3_ENDPOINT_URL")


@dataclass(frozen=True)
class Engines:
    s3_endpoint: str
    tracking_uri: str
    workdir: Path

    @property
    def s3(self):
        return s3_client(self.s3_endpoint)

    def keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Object key -> size of everything under `prefix` in `bucket`."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    endpoint = start_s3(tmp_path_factory.mktemp("s3"))
    client = s3_client(endpoint)
    for bucket in (MEDIA, ARTIFACTS, DVC):
        client.create_bucket(Bucket=bucket)
    return endpoint


@pytest.fixture(scope="module")
def engines(s3_endpoint, tmp_path_factory, django_db_setup, django_db_blocker):
    """The S3 server and an MLflow tracking server whose store is the session's database server when it
    is PostgreSQL (a database of its own), else a SQLite file."""
    workdir = tmp_path_factory.mktemp("engines")
    with django_db_blocker.unblock():
        session_database = database_url()
    if session_database.startswith("postgres"):
        backend = create_postgres_database(session_database, f"mlflow_{uuid.uuid4().hex[:8]}")
    else:
        backend = f"sqlite:///{workdir / 'mlflow.db'}"
    tracking_uri = start_mlflow_server(workdir, backend, f"s3://{ARTIFACTS}/artifacts", s3_endpoint)
    return Engines(s3_endpoint, tracking_uri, workdir)


@contextmanager
def mlflow_env_restored():
    """Registering through the server points MLflow's variables at it; later tests get the session's back."""
    import mlflow

    saved = {name: os.environ.get(name) for name in MLFLOW_ENV}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"] or "")
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"] or "")


def production_env(engines: Engines, **extra: str) -> dict[str, str]:
    """The environment of the product's processes in production: media in the bucket, MLflow through its
    server, and a broker database of their own (no other test's worker takes their tasks)."""
    broker = settings.REDIS_URL.rsplit("/", 1)[0] + "/7"
    env = {
        **S3_CREDENTIALS,
        "S3_ENDPOINT_URL": engines.s3_endpoint,
        "MEDIA_BUCKET": MEDIA,
        "MLFLOW_TRACKING_URI": engines.tracking_uri,
        "MLFLOW_REGISTRY_URI": "",
        "MLFLOW_ARTIFACT_ROOT": "",
        "CELERY_BROKER_URL": broker,
        "DATABASE_URL": database_url(),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }
    return {**env, **extra}


@contextmanager
def started(role: str, log: Path, env: dict[str, str]):
    """`scripts/start.sh ROLE`, as the Procfile and the containers run it; stopped on the way out."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "start.sh"), role],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- configuration -------------------------------------------------------------------------------------
def test_a_tracking_server_chooses_the_artifact_root_and_s3_clients_get_the_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://s3.internal:9000")
    monkeypatch.delenv("MLFLOW_ARTIFACT_ROOT", raising=False)
    served = MlopsConfig.from_env(base_dir=tmp_path)
    assert served.artifact_root == "" and served.s3_endpoint_url == "http://s3.internal:9000"
    assert (
        library_env(tmp_path, s3_endpoint_url=served.s3_endpoint_url)["MLFLOW_S3_ENDPOINT_URL"]
        == served.s3_endpoint_url
    )
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", "s3://artifacts/modelyard")
    assert MlopsConfig.from_env(base_dir=tmp_path).artifact_root == "s3://artifacts/modelyard"
    monkeypatch.delenv("MLFLOW_ARTIFACT_ROOT")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert MlopsConfig.from_env(base_dir=tmp_path).artifact_root == str(tmp_path / "var" / "mlartifacts")
    assert "MLFLOW_S3_ENDPOINT_URL" not in library_env(tmp_path)


# -- the registry through the tracking server ------------------------------------------------------
@pytest.mark.postgres
def test_a_version_registered_through_the_tracking_server_keeps_its_files_in_s3(engines, model_files, tmp_path):
    detector = model_files["detectors"][0]
    config = MlopsConfig(
        var_dir=tmp_path,
        tracking_uri=engines.tracking_uri,
        registry_uri=engines.tracking_uri,
        artifact_root="",  # the server decides
        experiment=f"engines-{uuid.uuid4().hex[:6]}",
    )
    name = f"engines-registry-{uuid.uuid4().hex[:6]}"
    lineage = Lineage(git_commit="0123abc", data_version="md5:feed", config_hash="c0ffee")
    with mlflow_env_restored():
        registry = MlflowModelRegistry(config)
        info = registry.register_version(
            name, "detection", detector.files(), metadata=detector.metadata, metrics={"mAP50": 0.5}, lineage=lineage
        )
        # The server chose where the experiment's artifacts live: proxied, kept in the bucket.
        experiment = registry.client.get_experiment(registry.experiment_id())
        assert experiment.artifact_location.startswith("mlflow-artifacts:")
        stored = engines.keys(ARTIFACTS, "artifacts/")
        version_keys = []
        for role, source in detector.files().items():
            artifact = info.artifacts[role]
            assert artifact.uri.startswith("mlflow-artifacts:"), artifact.uri
            assert artifact.sha256 == sha256(source.read_bytes())
            # mlflow-artifacts:/<path> is s3://mlflow/artifacts/<path> behind the server.
            key = "artifacts/" + artifact.uri.split(":", 1)[1].lstrip("/")
            assert stored.get(key) == source.stat().st_size, (role, key, sorted(stored))
            version_keys.append(key)

        # Another process (a fresh cache) reads it back through the server: files verified, lineage kept.
        reader = MlflowModelRegistry(config.with_overrides(model_cache_dir=tmp_path / "reader"))
        again = reader.get_version(name, info.version)
        assert again.lineage.git_commit == "0123abc" and again.lineage.data_version == "md5:feed"
        assert again.lineage.run_id == info.run_id
        fetched = reader.fetch(again, ["onnx", "weights"])
        assert fetched["onnx"].read_bytes() == detector.onnx.read_bytes()
        assert fetched["weights"].read_bytes() == detector.weights.read_bytes()
        assert str(fetched["onnx"]).startswith(str(tmp_path / "reader"))
        loaded_info, predictor = reader.load(name, info.version, alias=None)
        assert loaded_info.version == info.version and predictor is not None

        # Retention deletes the files from the bucket through the server; the version's record stays.
        assert reader.delete_version_artifacts(name, info.version)
        assert not set(version_keys) & set(engines.keys(ARTIFACTS))
        assert reader.get_version(name, info.version).version == info.version


# -- web and worker with media on S3 and models through the tracking server -------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_uploads_and_batches_use_the_bucket_and_the_tracking_server(engines, model_files, unique_name, tmp_path):
    # Registered and promoted here through the tracking server, as an admin's process would.
    with mlflow_env_restored():
        try:
            with override_settings(
                MLFLOW_TRACKING_URI=engines.tracking_uri,
                MLFLOW_REGISTRY_URI=engines.tracking_uri,
                MLFLOW_ARTIFACT_ROOT="",
                S3_ENDPOINT_URL=engines.s3_endpoint,
            ):
                mlops_config.cache_clear()
                version = VersionFactory(name=unique_name, files=model_files["detectors"][0], metrics={}, promoted=True)
        finally:
            mlops_config.cache_clear()  # the session's own store again
    assert version.artifacts["onnx"]["uri"].startswith("mlflow-artifacts:"), version.artifacts

    env = production_env(engines, DEFAULT_DETECTION_MODEL=unique_name)
    worker_env = {**env, "CELERY_QUEUES": "default,batch", "CELERY_HOSTNAME": f"engines-{uuid.uuid4().hex[:6]}@%h"}
    with (
        started("worker", tmp_path / "worker.log", worker_env) as worker,
        gunicorn_server(tmp_path / "web.log", env=env) as web,
    ):
        photo = image_bytes(synthetic_photo(96, 64, seed=4))
        answer = requests.post(f"{web.url}/api/v1/detections/", files={"image": ("photo.png", photo)}, timeout=60)
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["model"]["version"] == version.version  # loaded in the web process through the server

        # The upload is an object in the bucket, not a file under MEDIA_ROOT.
        detection = Detection.objects.get(pk=body["id"])
        stored = engines.keys(MEDIA)
        assert detection.image.name in stored and stored[detection.image.name] > 0
        assert not (Path(settings.MEDIA_ROOT) / detection.image.name).exists()

        # Our views read it back from the bucket.
        for picture, content_type in (
            ("image.jpg", "image/jpeg"),
            ("annotated.png", "image/png"),
            ("heatmap.png", "image/png"),
            ("thumbnail.jpg", "image/jpeg"),
        ):
            response = requests.get(f"{web.url}/api/v1/detections/{body['id']}/{picture}", timeout=30)
            assert response.status_code == 200, (picture, response.text[:300])
            assert response.headers["Content-Type"] == content_type
            assert Image.open(io.BytesIO(response.content)).size == (96, 64) or picture == "thumbnail.jpg"
        detection.refresh_from_db()
        assert detection.thumbnail.name in engines.keys(MEDIA, "thumbnails/")

        # A zip goes through the bucket to the worker and back.
        wait_until(lambda: b"ready." in (tmp_path / "worker.log").read_bytes(), timeout=180, what="the worker")
        assert worker.poll() is None
        images = {f"set/{i}.png": image_bytes(synthetic_photo(64, 48, seed=10 + i)) for i in range(2)}
        archive = zipped({**images, "broken.jpg": b"not a picture"})
        created = requests.post(
            f"{web.url}/api/v1/batches/", files={"files": ("images.zip", archive)}, data={"conf": "0.05"}, timeout=60
        )
        assert created.status_code == 202, created.text
        batch_id = created.json()["id"]
        final = wait_until(
            lambda: (
                (state := requests.get(f"{web.url}/api/v1/batches/{batch_id}/", timeout=10).json())["status"]
                in ("succeeded", "failed")
                and state
            ),
            timeout=180,
            what="the batch to finish on the worker",
        )
        assert (final["status"], final["processed"], final["failed"]) == ("succeeded", 3, 1), final
        results = requests.get(f"{web.url}/api/v1/batches/{batch_id}/results.json", timeout=10).json()["results"]
        assert [r["model"]["version"] for r in results if r["status"] == "done"] == [version.version] * 2
        batch_rows = Detection.objects.filter(batch_id=batch_id)
        media = engines.keys(MEDIA)
        assert batch_rows.count() == 2 and all(row.image.name in media for row in batch_rows)
        assert not engines.keys(MEDIA, f"batches/{uuid.UUID(batch_id).hex}/")  # the inputs, deleted when done


# -- DVC's remote on S3 ---------------------------------------------------------------------------------
def _checkout(target: Path) -> None:
    """What the pipeline's ingest stage needs, as a clone has it."""
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore", "scripts/dvc_remote.sh"):
        if (ROOT / name).exists():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    shutil.copytree(ROOT / "mlops", target / "mlops", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    params = yaml.safe_load((target / "params.yaml").read_text())
    params["data"]["detection"]["options"].update({"count": 6, "imgsz": 32})
    params["data"]["classification"]["options"].update({"per_class": 4, "imgsz": 32})
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dvc_pushes_a_dataset_to_the_s3_remote_and_pulls_it_back(s3_endpoint, tmp_path):
    repo = tmp_path / "repo"
    _checkout(repo)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "KAGGLE"))}
    env.update(
        S3_CREDENTIALS,
        S3_ENDPOINT_URL=s3_endpoint,
        DVC_REMOTE_URL=f"s3://{DVC}/store",
        VAR_DIR=str(repo / "var"),
        YOLO_CONFIG_DIR=str(repo / "var" / "ultralytics"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(repo),
    )

    def run(*command: str) -> str:
        result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        return result.stdout

    run("bash", "scripts/dvc_remote.sh")
    listed = run(str(BIN / "dvc"), "remote", "list")
    assert f"s3://{DVC}/store" in listed
    run(str(BIN / "dvc"), "repro", "ingest")
    dataset = repo / "data" / "raw" / "shapes"
    before = _tree(dataset)
    assert len([name for name in before if name.endswith(".jpg")]) == 6

    run(str(BIN / "dvc"), "push", "ingest")
    pushed = s3_client(s3_endpoint).list_objects_v2(Bucket=DVC, Prefix="store/")
    assert pushed.get("KeyCount", 0) >= len(before)

    shutil.rmtree(dataset)
    shutil.rmtree(repo / ".dvc" / "cache")
    run(str(BIN / "dvc"), "pull", "ingest")
    assert _tree(dataset) == before
    assert "Cache and remote 'storage' are in sync" in run(str(BIN / "dvc"), "status", "--cloud", "ingest")
