"""bootstrap_models' first detector: Ultralytics' COCO-pretrained yolo26n when its weights can be had,
the shapes detector's training when they cannot.

Ultralytics' releases are outside this machine, so only the network fetch is replaced: the probe
answers and `attempt_download_asset` hands over a yolo26n built here from Ultralytics' own
`yolo26n.yaml` with random weights and COCO's class names (the released file's shape), or fails as
offline. Everything after it is real: the ONNX export, the smoke test, MLflow, the registry rows, the
promotion and a detection served by the new version.
"""

from __future__ import annotations

import logging
import shutil
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from backend.registry.models import Deployment, RegisteredModel
from backend.training.models import TrainingJob
from mlops.training import pretrained
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.django_db]

NAMES = {
    "DEFAULT_DETECTION_MODEL": "boot-coco-detector",
    "DEFAULT_CLASSIFICATION_MODEL": "boot-coco-classifier",
    "DEFAULT_TABULAR_MODEL": "boot-coco-tabular",
}


@pytest.fixture(scope="module")
def yolo26n_weights(tmp_path_factory) -> Path:
    """A yolo26n-shaped checkpoint (Ultralytics' yolo26n.yaml, COCO's 80 names, random weights)."""
    from ultralytics import YOLO
    from ultralytics.utils import ROOT, YAML

    model = YOLO("yolo26n.yaml")
    model.model.names = YAML.load(ROOT / "cfg/datasets/coco.yaml")["names"]
    path = tmp_path_factory.mktemp("released") / "yolo26n.pt"
    model.save(str(path))
    return path


@pytest.fixture
def releases(monkeypatch, yolo26n_weights):
    """Ultralytics' releases as seen from here: online (hands over the checkpoint) or offline."""
    calls: list[dict] = []

    class Releases:
        online = True

        def download(self, file, **kwargs):
            if Path(file).is_file():  # as Ultralytics' own: a local file is no download (YOLO(path) asks too)
                return str(file)
            calls.append({"file": str(file), **kwargs})
            if not self.online:
                raise ConnectionError(f"Download failure for {Path(file).name}. Environment may be offline.")
            shutil.copyfile(yolo26n_weights, file)
            return file

    state = Releases()
    state.calls = calls
    monkeypatch.setattr(pretrained, "probe_http", lambda url, timeout: None)
    monkeypatch.setattr("ultralytics.utils.downloads.attempt_download_asset", state.download)
    return state


@pytest.mark.django_db(transaction=True)  # serving loads the version in a thread of its own: rows committed
@override_settings(**NAMES, BOOTSTRAP_DETECTOR="auto")
def test_online_registers_and_promotes_the_pretrained_detector(releases):
    out = StringIO()
    started = time.monotonic()
    call_command("bootstrap_models", stdout=out)
    took = time.monotonic() - started

    assert [call["file"].endswith("yolo26n.pt") for call in releases.calls] == [True]
    assert releases.calls[0]["retry"] == pretrained.DOWNLOAD_RETRIES  # no minute of retries
    model = RegisteredModel.objects.get(name=NAMES["DEFAULT_DETECTION_MODEL"])
    version = model.production_version
    assert version is not None and version.semantic_label == "v1.0"
    assert len(version.metadata["class_names"]) == 80 and version.metadata["class_names"][0] == "person"
    assert version.metadata["pretrained"] == "yolo26n.pt" and version.metadata["imgsz"] == 640
    assert {"onnx", "weights"} <= set(version.artifacts)
    # Lineage like a trained version's: its own MLflow run, the commit, the packages, the weights' hash.
    assert version.mlflow_run_id and version.git_commit and "ultralytics" in version.package_versions
    assert version.data_version == "coco:yolo26n.pt" and len(version.config_hash) == 16
    deployment = Deployment.objects.get(model=model, to_version=version)
    assert deployment.succeeded and deployment.actor is None
    # No training of the detector; the other two models are still trained.
    assert not TrainingJob.objects.filter(model_name=NAMES["DEFAULT_DETECTION_MODEL"]).exists()
    assert set(TrainingJob.objects.values_list("model_name", flat=True)) == {
        NAMES["DEFAULT_CLASSIFICATION_MODEL"],
        NAMES["DEFAULT_TABULAR_MODEL"],
    }
    assert f"{NAMES['DEFAULT_DETECTION_MODEL']} (detection): registered and promoted v1.0" in out.getvalue()
    assert took < 120, f"bootstrap took {took:.0f}s"

    # The upload API answers with it right away.
    answer = APIClient().post(
        "/api/v1/detections/", {"image": _upload()}, format="multipart", HTTP_ACCEPT="application/json"
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["model"]["name"] == NAMES["DEFAULT_DETECTION_MODEL"]
    assert answer.json()["model"]["version"] == version.version

    again = StringIO()
    call_command("bootstrap_models", stdout=again)  # `make run` a second time: nothing fetched again
    assert len(releases.calls) == 1
    assert "in production as v1.0; nothing to do" in again.getvalue()


@override_settings(**NAMES, BOOTSTRAP_DETECTOR="auto")
def test_offline_queues_the_shapes_detector_with_one_clear_line(releases, caplog):
    releases.online = False
    out = StringIO()
    with caplog.at_level(logging.WARNING, logger="backend.training.management.commands.bootstrap_models"):
        call_command("bootstrap_models", stdout=out)
    job = TrainingJob.objects.get(model_name=NAMES["DEFAULT_DETECTION_MODEL"])
    assert (job.kind, job.dataset, job.auto_promote) == ("detection", "synthetic:shapes", True)
    assert not RegisteredModel.objects.filter(name=NAMES["DEFAULT_DETECTION_MODEL"]).exists()
    line = [line for line in out.getvalue().splitlines() if line.startswith(NAMES["DEFAULT_DETECTION_MODEL"])]
    assert len(line) == 1 and "could not be had" in line[0] and "Environment may be offline" in line[0]
    assert f"queued training job #{job.pk}" in line[0]
    warnings = [r.getMessage() for r in caplog.records if "pretrained_unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "training shapes instead" in warnings[0]


@override_settings(**NAMES, BOOTSTRAP_DETECTOR="pretrained")
def test_pretrained_only_queues_nothing_when_offline(releases):
    releases.online = False
    out = StringIO()
    call_command("bootstrap_models", stdout=out)
    assert not TrainingJob.objects.filter(model_name=NAMES["DEFAULT_DETECTION_MODEL"]).exists()
    assert "nothing queued (BOOTSTRAP_DETECTOR=pretrained" in out.getvalue()


@override_settings(**NAMES, BOOTSTRAP_DETECTOR="shapes")
def test_shapes_never_asks_the_network(releases):
    call_command("bootstrap_models", stdout=StringIO())
    assert releases.calls == []
    assert TrainingJob.objects.get(model_name=NAMES["DEFAULT_DETECTION_MODEL"]).dataset == "synthetic:shapes"


def test_an_unreachable_release_host_fails_within_seconds(monkeypatch, tmp_path):
    """The real probe, against a port nobody listens on: no download is attempted, the reason is given."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setattr(pretrained, "WEIGHTS_URL", f"http://127.0.0.1:{closed}")
    started = time.monotonic()
    with pytest.raises(pretrained.PretrainedUnavailable, match="does not answer"):
        pretrained.download_asset("yolo26n.pt", tmp_path, timeout=2.0)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "yolo26n.pt").exists()


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("street.png", image_bytes(synthetic_photo(96, 64)), content_type="image/png")
