"""The alerting pages in a real browser: the open alerts on a model's dashboard, one alert with its
evidence, the drift report it links, and an operator acknowledging it."""

from __future__ import annotations

import pytest

from backend.alerting.models import Alert, AlertRule, Channel
from backend.alerting.services.evaluation import evaluate_rules
from backend.monitoring.models import DriftReport
from tests.browser.test_monitoring_pages import scored_model
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_operator_opens_an_alert_and_its_drift_report_and_acknowledges_it(
    live_server, browser, serve_tabular, model_files, screenshot_dir, eager
):
    name = scored_model(serve_tabular, model_files)
    report = DriftReport.objects.get(model__name=name)
    assert report.drifted
    rule = AlertRule.objects.create(
        name="drift detected (test)", kind="drift", comparison=">=", threshold=1, window_minutes=180, severity="warning"
    )
    Channel.objects.get_or_create(name="log", defaults={"kind": "log"})
    evaluate_rules(kinds=["drift"])
    alert = Alert.objects.get(rule=rule, scope=name)
    assert alert.state == Alert.State.FIRING and alert.evidence["drift_report"] == report.pk
    operator = UserFactory(username="operator", staff=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/admin/login/?next=/monitoring/models/{name}/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw-operator-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"**/monitoring/models/{name}/")
    panel = page.locator("section.alerts-panel")
    row = panel.locator("table.alerts").first.locator("tr", has_text=rule.name)
    assert row.count() == 1
    assert "Firing" in row.inner_text() and name in row.inner_text()
    page.screenshot(path=str(screenshot_dir / "alerts-dashboard.png"), full_page=True)

    row.get_by_role("link").first.click()  # the started-at link
    page.wait_for_url(f"**/alerts/{alert.pk}/")
    heading = page.inner_text("h1")
    assert rule.name in heading and "firing" in heading.lower()
    evidence = page.locator("ul.evidence").get_by_role("link", name=f"Drift report #{report.pk}")
    assert evidence.get_attribute("href") == f"/monitoring/drift-reports/{report.pk}/"
    delivery = page.locator("table.reports tr", has_text="alert.firing")
    assert "log" in delivery.inner_text() and "Sent" in delivery.inner_text()  # delivered in-process (eager)
    page.screenshot(path=str(screenshot_dir / "alert-page.png"), full_page=True)

    evidence.click()
    page.wait_for_url(f"**/monitoring/drift-reports/{report.pk}/")
    assert f"Drift report #{report.pk}" in page.inner_text("h1") and "drift" in page.inner_text("table.columns")
    page.go_back()
    page.wait_for_url(f"**/alerts/{alert.pk}/")

    page.get_by_role("button", name="Acknowledge").click()
    message = page.locator(".message", has_text=f"Alert #{alert.pk}: acknowledged.")
    message.wait_for()
    assert message.count() == 1  # said once, by the base template
    assert "acknowledged" in page.inner_text("h1").lower()
    assert page.get_by_role("button", name="Acknowledge").count() == 0
    assert page.get_by_role("button", name="Resolve").count() == 1  # still open: it resolves by itself or by hand
    assert "by operator" in page.locator("table.columns tr", has_text="Acknowledged").inner_text()
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED and alert.acknowledged_by == operator
    page.screenshot(path=str(screenshot_dir / "alert-acknowledged.png"), full_page=True)
    assert errors == []
