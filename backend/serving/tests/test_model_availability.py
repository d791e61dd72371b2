"""While a model's first version trains, its pages and GET /api/v1/models/{name}/availability/ say so:
the job, its status and progress, a link; once a version is promoted, the page shows its form."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from backend.training.models import TrainingJob
from tests.factories import TrainingJobFactory, VersionFactory

pytestmark = [pytest.mark.django_db]


def _availability(name: str) -> dict:
    response = APIClient().get(f"/api/v1/models/{name}/availability/")
    assert response.status_code == 200, response.content
    return response.json()


def _hidden(html: str, marker: str) -> bool:
    """Is the section whose opening tag carries `marker` (id="dropzone", class="controls") hidden?"""
    tag = re.search(rf"<section [^>]*{marker}[^>]*>", html)
    assert tag is not None, f"no section with {marker} on the page"
    return " hidden" in tag.group(0)


def test_detect_page_shows_the_running_job_then_the_form(unique_name, model_files):
    job = TrainingJobFactory(
        kind=TrainingJob.Kind.DETECTION, model_name=unique_name, running=True, epoch=3, epochs=30, progress=10.0
    )
    api = _availability(unique_name)
    assert api["state"] == "training" and api["production"] is None
    assert api["training_job"]["id"] == job.pk and api["training_job"]["status"] == "running"
    assert (api["training_job"]["epoch"], api["training_job"]["epochs"]) == (3, 30)
    assert api["training_job"]["progress_text"] == "epoch 3 of 30, 10%"
    assert api["training_job"]["url"] == f"/training/jobs/{job.pk}/"

    html = Client().get(f"/?model={unique_name}").content.decode()
    assert "There is no model named" not in html
    assert f'<a href="/training/jobs/{job.pk}/">training job #{job.pk}</a>' in html
    assert '<b class="job-status">running</b>' in html and "epoch 3 of 30, 10%" in html
    assert f'data-url="/api/v1/models/{unique_name}/availability/" data-state="training"' in html
    assert _hidden(html, 'id="dropzone"') and _hidden(html, 'class="controls"')

    VersionFactory(name=unique_name, files=model_files["detectors"][0], promoted=True)
    job.status = TrainingJob.Status.SUCCEEDED
    job.save(update_fields=["status"])
    api = _availability(unique_name)
    assert api["state"] == "serving" and api["production"]["label"] == "v1.0" and api["training_job"] is None
    html = Client().get(f"/?model={unique_name}").content.decode()
    assert "is being trained" not in html and "v1.0" in html and 'data-state="serving"' in html
    assert not _hidden(html, 'id="dropzone"') and not _hidden(html, 'class="controls"')


def test_a_production_version_wins_over_a_retraining(unique_name, model_files):
    """A retrain of a model already in production is not "waiting": the page keeps its form."""
    VersionFactory(name=unique_name, files=model_files["detectors"][0], promoted=True)
    TrainingJobFactory(kind=TrainingJob.Kind.DETECTION, model_name=unique_name)
    assert _availability(unique_name)["state"] == "serving"
    assert not _hidden(Client().get(f"/?model={unique_name}").content.decode(), 'id="dropzone"')


def test_classify_and_scoring_pages_show_a_queued_job(unique_name):
    classifier = TrainingJobFactory(kind=TrainingJob.Kind.CLASSIFICATION, model_name=f"{unique_name}-c")
    html = Client().get(f"/classify/?model={unique_name}-c").content.decode()
    assert f"training job #{classifier.pk}</a>" in html and '<b class="job-status">queued</b>' in html
    assert _hidden(html, 'id="dropzone"')

    tabular = TrainingJobFactory(kind=TrainingJob.Kind.TABULAR, model_name=f"{unique_name}-t", stage="queued")
    html = Client().get(f"/scoring/?model={unique_name}-t").content.decode()
    assert f"training job #{tabular.pk}</a>" in html and "is being trained" in html
    assert "scoring form by itself" in html and 'id="score-form"' not in html


def test_nothing_registered_nothing_training(unique_name, model_files):
    assert _availability(unique_name) == {
        "name": unique_name,
        "state": "missing",
        "kind": None,
        "production": None,
        "training_job": None,
    }
    html = Client().get(f"/?model={unique_name}").content.decode()
    assert "There is no model named" in html and 'data-state="missing"' in html
    VersionFactory(name=unique_name, files=model_files["detectors"][0])
    assert _availability(unique_name)["state"] == "not_in_production"
