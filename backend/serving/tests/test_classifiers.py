"""Image classifiers in the registry and in serving: registered from their YOLO files, promoted through
the smoke test (a probability vector over the version's classes), served by the process holder through
ONNX Runtime, and refused when their file is corrupted or is not a classifier."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from PIL import Image

from backend.registry import services
from backend.registry.models import Deployment, ModelVersion
from backend.serving.services import model_info, served_model
from mlops.exceptions import MlopsError, SmokeTestFailed
from mlops.registry.artifacts import local_path_of
from mlops.tests.classifier_support import asset
from tests.factories import VersionFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_promoted_classifier_answers_with_probabilities_over_its_classes(classifier_model, unique_name):
    version = VersionFactory(name=unique_name, kind="classification", files=classifier_model, metrics={}, promoted=True)
    deployment = Deployment.objects.get(to_version=version, succeeded=True)
    assert deployment.smoke_test["ok"] is True

    served = served_model(unique_name, "classification")
    assert served.version.id == version.pk
    answers = {}
    for name in ("bus.jpg", "zidane.jpg"):
        result = served.predictor.predict(Image.open(asset(name)).convert("RGB"), top_k=2)
        assert abs(sum(result.probabilities) - 1) < 1e-5 and len(result.probabilities) == 3
        assert [score.class_name for score in result.classes] == sorted(
            classifier_model.class_names, key=lambda c: -result.probabilities[classifier_model.class_names.index(c)]
        )[:2]
        answers[name] = result.top1.class_name
    assert len(set(answers.values())) == 2  # the test model tells these two photos apart

    info = model_info(unique_name)
    assert (info["kind"], info["input_size"], info["class_names"]) == ("classification", 96, ["cat", "dog", "bird"])
    with pytest.raises(MlopsError) as wrong:
        served_model(unique_name, "detection")
    assert wrong.value.code == "wrong_model_kind"


def test_register_model_reads_a_classifiers_classes_and_size_from_its_onnx(classifier_model, unique_name):
    call_command(
        "register_model", "--name", unique_name, "--kind", "classification",
        "--artifact", str(classifier_model.weights), "--onnx", str(classifier_model.onnx), stdout=io.StringIO(),
    )  # fmt: skip
    version = ModelVersion.objects.get(model__name=unique_name)
    assert version.model.kind == "classification"
    assert (version.metadata["class_names"], version.metadata["imgsz"]) == (["cat", "dog", "bird"], 96)
    assert set(version.artifacts) >= {"onnx", "weights"}


def test_a_corrupted_classifier_or_a_detector_posing_as_one_is_refused(classifier_model, model_files, unique_name):
    good = VersionFactory(name=unique_name, kind="classification", files=classifier_model, metrics={}, promoted=True)
    corrupted = VersionFactory(name=unique_name, kind="classification", files=classifier_model, metrics={})
    stored = local_path_of(corrupted.artifacts["onnx"]["uri"])
    stored.write_bytes(stored.read_bytes()[:-100] + b"\0" * 100)
    with pytest.raises(SmokeTestFailed):
        services.promote_version(corrupted, reason="should not go out")

    detector = model_files["detectors"][0]
    posing = services.register_from_files(
        unique_name, "classification", {"onnx": detector.onnx}, metadata=classifier_model.metadata
    )
    with pytest.raises(SmokeTestFailed):
        services.promote_version(posing, reason="should not go out")
    assert ModelVersion.objects.get(pk=good.pk).status == "production"
    refused = Deployment.objects.filter(model=good.model, succeeded=False).order_by("pk")
    assert [d.to_version_id for d in refused] == [corrupted.pk, posing.pk]
    assert all(d.smoke_test["ok"] is False for d in refused)
