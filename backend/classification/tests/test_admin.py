"""The admin shows the classification log and its feedback read-only: evidence, never edited by hand."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from backend.classification.models import Classification, ClassificationFeedback
from mlops.tests.classifier_support import asset

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_the_admin_lists_classifications_and_feedback_read_only(serve_classifier, admin_user, client):
    serve_classifier()
    api = APIClient()
    body = api.post("/api/v1/classifications/", {"image": SimpleUploadedFile("bus.jpg", asset("bus.jpg").read_bytes())})
    assert body.status_code == 201, body.content
    pk = body.json()["id"]
    api.post(f"/api/v1/classifications/{pk}/feedback/", {"verdict": "wrong", "correct_class": "dog"}, format="json")
    client.force_login(admin_user)

    listing = client.get("/admin/classification/classification/")
    assert listing.status_code == 200 and pk in listing.content.decode()
    assert f"/api/v1/classifications/{pk}/thumbnail.jpg" in listing.content.decode()
    row = client.get(f"/admin/classification/classification/{pk}/change/")
    assert row.status_code == 200 and Classification.objects.get(pk=pk).class_name in row.content.decode()
    assert client.get("/admin/classification/classification/add/").status_code == 403
    feedback = ClassificationFeedback.objects.get()
    assert client.get("/admin/classification/classificationfeedback/").status_code == 200
    assert client.get(f"/admin/classification/classificationfeedback/{feedback.pk}/change/").status_code == 200
    assert client.post(f"/admin/classification/classificationfeedback/{feedback.pk}/change/", {}).status_code == 403
