"""The upload page of a model whose first version is still training, in a real browser: it shows the
job and its progress as the worker reports it, and turns into the upload form by itself once a version
of the model is promoted (no reload by the visitor)."""

from __future__ import annotations

import pytest

from backend.training.models import TrainingJob
from tests.factories import TrainingJobFactory, VersionFactory
from tests.support import image_bytes, synthetic_photo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_page_follows_the_training_and_flips_to_the_form(
    live_server, browser, model_files, unique_name, settings, tmp_path, journey
):
    settings.DEFAULT_DETECTION_MODEL = unique_name
    job = TrainingJobFactory(
        kind=TrainingJob.Kind.DETECTION, model_name=unique_name, running=True, epoch=3, epochs=30, progress=10.0
    )
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))

    page.goto(f"{live_server.url}/")
    status = page.locator("#model-status")
    assert "epoch 3 of 30, 10%" in status.inner_text()
    assert status.locator("a").get_attribute("href") == f"/training/jobs/{job.pk}/"
    assert page.locator("#dropzone").is_hidden()
    journey.step(page, "training", publish="detect-training.png")

    # The worker reports an epoch: the page shows it without loading again.
    TrainingJob.objects.filter(pk=job.pk).update(epoch=4, progress=13.3)
    page.wait_for_function(
        "() => document.querySelector('#model-status .job-progress').textContent.includes('epoch 4 of 30')",
        timeout=15_000,
    )
    assert page.locator("#model-status progress").evaluate("bar => bar.value") == pytest.approx(13.3)
    assert len(loads) == 1

    # The job registers and promotes its version: the page becomes the upload form by itself.
    version = VersionFactory(name=unique_name, files=model_files["detectors"][0], promoted=True)
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingJob.Status.SUCCEEDED, progress=100.0)
    page.wait_for_selector("#dropzone", state="visible", timeout=15_000)
    assert f"(version {version.version}) is in production" in status.inner_text()
    assert "being trained" not in status.inner_text()

    # And it answers.
    picture = tmp_path / "photo.png"
    picture.write_bytes(image_bytes(synthetic_photo(160, 120)))
    page.set_input_files("#file-input", [str(picture)])
    page.wait_for_selector(".result[data-state=done]", timeout=30_000)
    assert unique_name in page.inner_text(".result .meta")
    journey.step(page, "promoted")
    assert errors == []
