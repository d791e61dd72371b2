"""A classifier's training policy counts the trusted verdicts on its classifications, as a detector's does."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from backend.alerting.models import TrainingPolicy
from backend.alerting.services.retraining import run_policies
from mlops.tests.classifier_support import asset
from tests.factories import TrainingJobFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def judged(client: APIClient, verdict: str = "correct") -> None:
    answer = client.post(
        "/api/v1/classifications/", {"image": SimpleUploadedFile("bus.jpg", asset("bus.jpg").read_bytes())}
    )
    assert answer.status_code == 201, answer.content
    given = client.post(answer.json()["links"]["feedback"], {"verdict": verdict}, format="json")
    assert given.status_code == 201, given.content


def test_trusted_verdicts_on_classifications_start_a_feedback_retraining(serve_classifier, unique_name):
    version = serve_classifier()
    policy = TrainingPolicy.objects.create(model=version.model, feedback_samples=3, quiet_hours=0)
    TrainingJobFactory(kind="classification", model_name=unique_name)  # queued, sent to no worker
    for _ in range(4):
        judged(APIClient())
    assert run_policies() == []
    policy.refresh_from_db()
    assert policy.last_outcome == ""  # anonymous verdicts are not a reason to retrain

    reviewer = APIClient()
    reviewer.force_authenticate(UserFactory(username="reviewer", staff=True))
    for _ in range(3):
        judged(reviewer, "wrong")
    run_policies()
    policy.refresh_from_db()
    assert policy.last_outcome.startswith("feedback:") and "already queued" in policy.last_outcome
