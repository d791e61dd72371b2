"""The live job page in a real browser (Debian's chromium through Playwright): it draws the curves,
follows the row as the worker changes it, and cancels through the API with the session's CSRF token."""

import shutil

import pytest
from django.utils import timezone

from backend.training.models import TrainingJob
from tests.factories import TrainingJobFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page(live_server, django_user_model, monkeypatch):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls here stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django_user_model.objects.create_user("watcher", password="pw-watcher-1", is_staff=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page()
        tab.errors = []
        tab.on("pageerror", lambda error: tab.errors.append(str(error)))
        tab.goto(f"{live_server.url}/admin/login/?next=/training/jobs/")
        tab.fill("#id_username", "watcher")
        tab.fill("#id_password", "pw-watcher-1")
        tab.click("input[type=submit]")
        tab.wait_for_url("**/training/jobs/")
        yield tab
        browser.close()


def test_job_page_follows_progress_and_cancels(page, live_server):
    job = TrainingJobFactory(
        kind="detection",
        model_name="watched",
        running=True,
        epoch=1,
        epochs=4,
        progress=25.0,
        history=[{"epoch": 1, "train/box_loss": 2.0, "val/box_loss": 2.2, "mAP50": 0.1, "lr/pg0": 0.01}],
        log_tail="\n".join(f"line {n}" for n in range(300)),
    )
    page.goto(f"{live_server.url}/training/jobs/{job.pk}/")
    assert page.text_content("[data-field=progress-text]").strip() == "25% · epoch 1 of 4"
    assert page.locator('[data-chart="loss"] path.line').count() == 2  # train and val box loss
    assert page.locator('[data-chart="quality"] path.line').count() == 1  # mAP50; learning rates left out

    # The worker moves on: the page follows without a reload.
    TrainingJob.objects.filter(pk=job.pk).update(
        epoch=2,
        progress=50.0,
        history=[*job.history, {"epoch": 2, "train/box_loss": 1.5, "val/box_loss": 1.9, "mAP50": 0.3}],
        metrics={"mAP50": 0.3},
    )
    page.wait_for_function(
        "document.querySelector('[data-field=progress-text]').textContent.includes('epoch 2 of 4')", timeout=10000
    )
    assert page.get_attribute("[data-field=progress-fill]", "style") == "width: 50%;"
    assert "mAP50" in page.text_content("[data-field=metrics]")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-action=cancel]")
    page.wait_for_function("document.querySelector('[data-field=status]').textContent.includes('cancelling')")
    assert TrainingJob.objects.get(pk=job.pk).cancel_requested

    TrainingJob.objects.filter(pk=job.pk).update(status="cancelled", stage="cancelled", finished_at=timezone.now())
    page.wait_for_function("document.querySelector('[data-field=status]').textContent === 'cancelled'")
    assert page.locator("[data-action=cancel]").is_hidden()
    assert page.errors == []
