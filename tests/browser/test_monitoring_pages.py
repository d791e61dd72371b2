"""The monitoring pages in a real browser: the models list, a model's dashboard drawn as SVG
charts, and a drift report with Evidently's own report opened from it."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from backend.monitoring.models import DriftReport, DriftSettings
from backend.monitoring.services import performance
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def scored_model(serve_tabular, model_files) -> str:
    """A tabular model in production with 240 scored records, rolled up, and a drift check of them."""
    version = serve_tabular(0)
    DriftSettings.objects.create(model=version.model, reference_predictions=120, window_predictions=120, min_samples=60)
    rng = np.random.default_rng(0)
    schema = model_files["tabular"][0].feature_schema
    client = APIClient()
    for shift in (1.0, 1.8):  # the first 120 records are the reference; the next 120 are shifted
        records = [
            {f["name"]: f["min"] + (f["max"] - f["min"]) * min(1.0, rng.beta(2, 5) * shift) for f in schema}
            for _ in range(120)
        ]
        assert client.post("/api/v1/tabular/predictions/", {"records": records}, format="json").status_code == 200
    performance.roll_up(now=timezone.now() + timedelta(minutes=1))
    call_command("detect_drift", version.model.name, stdout=open("/dev/null", "w"))  # noqa: SIM115
    return version.model.name


def test_an_operator_opens_the_dashboard_and_a_drift_report(
    live_server, browser, serve_tabular, model_files, screenshot_dir
):
    name = scored_model(serve_tabular, model_files)
    report = DriftReport.objects.get(model__name=name)
    UserFactory(username="operator", staff=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/admin/login/?next=/monitoring/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw-operator-123")
    page.click("input[type=submit]")
    page.wait_for_url("**/monitoring/")
    row = page.locator("table.models tr", has_text=name)
    assert "attention" in row.inner_text()  # the latest check flagged drift
    page.screenshot(path=str(screenshot_dir / "monitoring-models.png"), full_page=True)

    row.get_by_role("link", name=name).click()
    page.wait_for_url(f"**/monitoring/models/{name}/")
    charts = page.locator("svg.chart")
    assert charts.count() == 6
    predictions = page.locator("svg.chart", has=page.locator("title", has_text="Predictions"))
    assert predictions.locator("path").count() >= 1 and predictions.locator("circle").count() >= 1
    assert page.locator("table.deployments").inner_text().count("v1.0") >= 1
    page.screenshot(path=str(screenshot_dir / "monitoring-dashboard.png"), full_page=True)

    page.get_by_role("link", name="report").first.click()
    page.wait_for_url(f"**/monitoring/drift-reports/{report.pk}/")
    assert "Drift report" in page.inner_text("h1") and "drift" in page.inner_text("table.columns")
    page.screenshot(path=str(screenshot_dir / "monitoring-drift-report.png"), full_page=True)
    # Evidently's own report opens in a tab of its own and renders (its scripts run, sandboxed by its header).
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open Evidently's report").click()
    evidently = opened.value
    evidently.get_by_text("Dataset Drift", exact=True).first.wait_for(timeout=60_000)
    assert "Drift is detected" in evidently.inner_text("body")
    assert evidently.url.endswith(f"/drift-reports/{report.pk}/report.html")
    evidently.screenshot(path=str(screenshot_dir / "monitoring-evidently-report.png"))
    assert errors == []
