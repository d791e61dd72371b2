"""Anyone may judge a detection, but only trusted reviewers' verdicts become training labels: staff,
or holders of detection.trusted_feedback. The others are kept, marked, and exported only on request."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from rest_framework.test import APIClient

from backend.detection.models import Detection, Feedback
from backend.detection.services.feedback_export import export_feedback
from backend.registry.models import ModelVersion, RegisteredModel
from tests.factories import UserFactory
from tests.support import image_bytes, synthetic_photo

pytestmark = pytest.mark.django_db


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def version(unique_name):
    """A version row to hang detections on (no model is run here: the rows are written directly)."""
    model = RegisteredModel.objects.create(name=unique_name, kind=RegisteredModel.Kind.DETECTION)
    return ModelVersion.objects.create(model=model, version=1, metadata={"class_names": ["circle", "square"]})


def judged_correct(version: ModelVersion, client: APIClient, seed: int) -> tuple[str, dict]:
    """A stored detection with no boxes, judged right as a whole by `client`: (its label stem, the verdict)."""
    image = default_storage.save(f"test-uploads/{seed}.png", ContentFile(image_bytes(synthetic_photo(32, 32, seed))))
    detection = Detection.objects.create(
        model_version=version, image=image, width=32, height=32, conf=0.25, iou=0.7, max_det=300,
        latency_ms=1.0, inference_ms=1.0,
    )  # fmt: skip
    url = f"/api/v1/detections/{detection.pk}/feedback/"
    verdict = client.post(url, {"verdict": "correct", "min_confidence": 0.25}, format="json")
    assert verdict.status_code == 201, verdict.content
    return detection.pk.hex, verdict.json()


def exported(directory) -> set[str]:
    return {path.stem for path in (directory / "labels").glob("*.txt")}


def test_only_trusted_reviewers_feedback_becomes_labels(version, unique_name, tmp_path):
    reviewer = UserFactory(username="reviewer")  # not staff: trusted through the permission
    reviewer.user_permissions.add(Permission.objects.get(codename="trusted_feedback"))
    anonymous, anonymous_verdict = judged_correct(version, client_for(), seed=1)
    signed_in, _ = judged_correct(version, client_for(UserFactory(username="alice")), seed=2)
    staff, staff_verdict = judged_correct(version, client_for(UserFactory(username="boss", staff=True)), seed=3)
    trusted, _ = judged_correct(version, client_for(reviewer), seed=4)
    assert (anonymous_verdict["trusted"], staff_verdict["trusted"]) == (False, True)  # marked as given

    result = export_feedback(unique_name, tmp_path / "default")
    assert exported(tmp_path / "default") == {staff, trusted}
    assert (result.images, result.untrusted, result.include_untrusted) == (2, 2, False)
    manifest = json.loads((tmp_path / "default" / "manifest.json").read_text())
    assert (manifest["include_untrusted"], manifest["untrusted_verdicts_left_out"]) == (False, 2)
    assert Feedback.objects.count() == 4  # the untrusted verdicts are kept

    out = io.StringIO()
    call_command("export_feedback", unique_name, "--out", str(tmp_path / "all"), "--include-untrusted", stdout=out)
    assert exported(tmp_path / "all") == {anonymous, signed_in, staff, trusted}
    assert json.loads((tmp_path / "all" / "manifest.json").read_text())["include_untrusted"] is True

    # Trust is the author's, now: withdrawing it withdraws their labels from the next export.
    reviewer.user_permissions.clear()
    assert export_feedback(unique_name, tmp_path / "later").untrusted == 3
    assert exported(tmp_path / "later") == {staff}


def test_only_trusted_verdicts_count_towards_a_feedback_retraining(version, unique_name):
    from backend.alerting.models import TrainingPolicy
    from backend.alerting.services.retraining import run_policies
    from tests.factories import TrainingJobFactory

    policy = TrainingPolicy.objects.create(model=version.model, feedback_samples=3, quiet_hours=0)
    TrainingJobFactory(model_name=unique_name)  # queued, sent to no worker: a trigger is seen, no job starts
    for seed in range(5):
        judged_correct(version, client_for(None), seed)
    assert run_policies() == []
    policy.refresh_from_db()
    assert policy.last_outcome == ""  # five anonymous verdicts are not a reason to retrain

    reviewer = UserFactory()
    reviewer.user_permissions.add(Permission.objects.get(codename="trusted_feedback"))
    for seed in range(5, 8):
        judged_correct(version, client_for(reviewer), seed)
    run_policies()
    policy.refresh_from_db()
    assert policy.last_outcome.startswith("feedback:") and "already queued" in policy.last_outcome
