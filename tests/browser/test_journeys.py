"""The product as its people meet it, in a real browser: a visitor detecting objects, an admin training
and promoting a version (a real Celery worker trains it), an operator answering an alert, and a tabular
user scoring a record. Every page visited passes axe-core's check (no critical violation) and the key
steps are photographed (`SCREENSHOTS_DIR=docs/screenshots` publishes the chosen ones)."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from backend.alerting.models import Alert, AlertRule, Channel
from backend.alerting.services.evaluation import evaluate_rules
from backend.detection.models import Detection, Feedback
from backend.monitoring.models import DriftReport
from backend.registry.models import Deployment, ModelVersion
from backend.training.models import TrainingJob
from tests.browser.a11y import AccessibilityAudit
from tests.browser.test_detect_page import upscaled_samples
from tests.browser.test_monitoring_pages import scored_model
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORT = {"width": 1280, "height": 800}
# A detector trained in seconds on two cores: a few synthetic images at their own size.
TINY_JOB_PARAMS = {"batch": 8, "plots": False, "data": {"count": 24, "imgsz": 64, "seed": 3}}


# Readable model names for the screenshots; no other test registers them (the MLflow store lives for the session).
MODEL_NAMES = {
    "test_visitor_detects_filters_looks_at_the_heatmap_and_gives_feedback": "shape-finder",
    "test_admin_trains_compares_promotes_and_rolls_back": "shape-spotter",
    "test_operator_opens_the_dashboard_a_drift_report_and_acknowledges_an_alert": "tumour-risk",
    "test_tabular_user_scores_a_record_and_gets_the_apis_probabilities": "tumour-screening",
}


@pytest.fixture
def unique_name(request):
    return MODEL_NAMES[request.node.originalname]


def open_page(browser):
    page = browser.new_page(viewport=VIEWPORT)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


def log_in(page, journey, base_url: str, username: str, next_url: str) -> None:
    page.goto(f"{base_url}/admin/login/?next={next_url}")
    journey.check(page)
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")


def upload_one(page, path) -> dict:
    """Upload an image on the detect page; the API's answer, once the page has drawn it."""
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/detections/")) as sent:
        page.set_input_files("#file-input", str(path))
    page.locator(".result[data-state=done]").wait_for(timeout=60_000)
    return sent.value.json()


def test_visitor_detects_filters_looks_at_the_heatmap_and_gives_feedback(
    live_server, browser, served_detector, trained_detector, tmp_path, journey
):
    # Four: the tiny detector misses the shape in some images, and the filter needs two boxes.
    images = upscaled_samples(trained_detector.samples, tmp_path, count=4)
    page = open_page(browser)
    answers: dict[str, dict] = {}  # the API's answers to the page, by detection id

    def keep_answer(response) -> None:
        if response.request.method == "POST" and response.url.endswith("/api/v1/detections/") and response.ok:
            data = response.json()
            answers[data["id"]] = data

    page.on("response", keep_answer)

    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Detect", exact=True).click()
    assert page.inner_text("h1") == "Detect objects"
    assert f"{served_detector.model.name} v1.0 (version {served_detector.version})" in page.inner_text("#model-status")
    journey.step(page, "visitor-empty")

    page.set_input_files("#file-input", [str(path) for path in images])
    page.wait_for_function(
        "n => document.querySelectorAll('.result[data-state=done]').length === n", arg=len(images), timeout=60_000
    )
    for _ in range(100):  # the answers' events arrive while Playwright waits
        if len(answers) == len(images):
            break
        page.wait_for_timeout(50)
    assert len(answers) == len(images)
    cards = {card.get_attribute("data-detection-id"): card for card in page.query_selector_all(".result")}
    assert set(cards) == set(answers)
    confidences = sorted(box["confidence"] for answer in answers.values() for box in answer["boxes"])
    assert len(confidences) >= 2, "the trained detector found too few shapes to filter"

    def shown_at(threshold: float) -> dict[str, int]:
        page.locator("#threshold").fill(f"{threshold:.2f}")
        assert page.inner_text("#threshold-value") == f"{threshold:.2f}"
        return {pk: int(card.get_attribute("data-visible-boxes")) for pk, card in cards.items()}

    def api_count_at(threshold: float) -> dict[str, int]:
        return {pk: sum(box["confidence"] >= threshold for box in a["boxes"]) for pk, a in answers.items()}

    # The slider between the weakest and the strongest box: fewer boxes shown, exactly those the API scored above it.
    low = 0.05
    splitting = [t / 100 for t in range(6, 101) if 0 < sum(c >= t / 100 for c in confidences) < len(confidences)]
    assert splitting, f"no slider position separates the boxes' confidences {confidences}"
    middle = min(splitting, key=lambda t: abs(sum(c >= t for c in confidences) - len(confidences) / 2))
    at_low = shown_at(low)
    assert at_low == api_count_at(low) and sum(at_low.values()) == len(confidences)
    journey.step(page, "visitor-detect-all")
    at_middle = shown_at(middle)
    assert at_middle == api_count_at(middle) and sum(at_middle.values()) < sum(at_low.values())
    journey.step(page, "visitor-detect", publish="journey-visitor-detect.png")
    for pk, card in cards.items():
        listed = [float(li.get_attribute("data-confidence")) for li in card.query_selector_all("li.box")]
        assert all(value >= middle for value in listed) and len(listed) == at_middle[pk]

    # The heatmap replaces the drawing with the server's picture of the boxes above the threshold.
    page.check("#show-heatmap")
    pk = max(answers, key=lambda key: len(answers[key]["boxes"]))
    heatmap = cards[pk].query_selector("img.heatmap")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=heatmap, timeout=30_000)
    assert heatmap.is_visible() and heatmap.get_attribute("src").endswith(f"min_confidence={middle:.2f}")
    journey.step(page, "visitor-heatmap", publish="journey-visitor-heatmap.png")
    page.uncheck("#show-heatmap")

    # The history has the prediction; the visitor says it is right.
    page.get_by_role("link", name="History", exact=True).click()
    page.wait_for_url("**/history/")
    item = page.locator(f".history-item[data-detection-id='{pk}']")
    assert item.count() == 1 and page.locator(".history-item").count() == len(images)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=item.locator("img").element_handle())
    item.locator(".verdict[data-box-index=''] button[data-verdict='correct']").click()
    page.wait_for_function(
        "el => el.textContent === 'saved'", arg=item.locator(".verdict[data-box-index=''] .fb-status").element_handle()
    )
    journey.step(page, "visitor-history", publish="journey-visitor-history.png")
    assert page.errors == []
    assert list(Feedback.objects.filter(detection_id=pk).values_list("box_index", "verdict")) == [(None, "correct")]
    assert Detection.objects.get(pk=pk).model_version == served_detector


@pytest.mark.worker
def test_admin_trains_compares_promotes_and_rolls_back(
    live_server, browser, served_detector, trained_detector, celery_worker_process, tmp_path, journey
):
    model = served_detector.model
    admin = UserFactory(username="root", superuser=True)
    page = open_page(browser)
    log_in(page, journey, live_server.url, "root", "/admin/")
    journey.step(page, "admin-index")

    # Start a job through the admin's add form.
    page.goto(f"{live_server.url}/admin/training/trainingjob/add/")
    page.select_option("#id_kind", "detection")
    page.fill("#id_model_name", model.name)
    page.fill("#id_epochs", "2")
    page.fill("#id_imgsz", "64")
    page.fill("#id_params", json.dumps(TINY_JOB_PARAMS))
    journey.step(page, "admin-start-job")
    page.click("input[name=_save]")
    journey.check(page)
    page.get_by_role("link", name="Follow its progress").click()
    page.wait_for_url("**/training/jobs/*/")
    job = TrainingJob.objects.get(model_name=model.name)
    assert (job.requested_by, job.params["epochs"], job.params["imgsz"]) == (admin, 2, 64)

    # The job page follows the worker to 100 % without a reload.
    page.wait_for_function("document.querySelector('[data-field=status]').textContent === 'succeeded'", timeout=180_000)
    job.refresh_from_db()
    assert job.status == "succeeded", f"{job.error}\n{job.traceback}"
    assert page.text_content("[data-field=progress-text]").strip() == "100% · epoch 2 of 2"
    assert page.get_attribute(".progress", "aria-valuenow") in ("100", "100.0")
    candidate = job.model_version
    assert candidate.status != ModelVersion.Status.PRODUCTION and candidate.model == model
    journey.step(page, "admin-job-done", publish="journey-admin-training.png")

    # The new version, then the confirmation page comparing it with production.
    page.locator("[data-field=version] a").click()
    page.wait_for_url(f"**/admin/registry/modelversion/{candidate.pk}/change/")
    assert candidate.semantic_label in page.inner_text("#content")
    journey.step(page, "admin-version")
    page.goto(f"{live_server.url}/admin/registry/modelversion/?model__id__exact={model.pk}")
    journey.check(page)
    page.check(f"input[name=_selected_action][value='{candidate.pk}']")
    page.select_option("select[name=action]", "promote_to_production")
    page.click("button[name=index]")
    comparison = page.locator("#metrics-comparison")
    headers = comparison.locator("th").all_text_contents()
    assert headers[1:] == [f"{candidate.semantic_label} (candidate)", f"{served_detector.semantic_label} (production)"]
    rows = [row.locator("td").all_text_contents() for row in comparison.locator("tbody tr").all()]
    shown = {cells[0]: cells[1:] for cells in rows}
    assert shown["mAP50"] == [str(candidate.metrics["mAP50"]), str(served_detector.metrics["mAP50"])]
    assert set(shown) == set(candidate.metrics) | set(served_detector.metrics)
    journey.step(page, "admin-promote", publish="journey-admin-promote.png")
    page.fill("#id_reason", "try the retrained version on live traffic")
    page.click("input[type=submit][value=Confirm]")
    page.locator(".messagelist", has_text=f"{candidate} is now in production.").wait_for()
    candidate.refresh_from_db()
    assert candidate.status == ModelVersion.Status.PRODUCTION

    # The upload page answers with the new version.
    page.goto(f"{live_server.url}/")
    assert f"(version {candidate.version}) is in production" in page.inner_text("#model-status")
    answer = upload_one(page, upscaled_samples(trained_detector.samples, tmp_path, count=1)[0])
    assert answer["model"]["version"] == candidate.version
    assert f"(version {candidate.version}) answered in" in page.inner_text(".result .meta")
    journey.step(page, "admin-new-version-answers")

    # Roll back, and read the history.
    page.goto(f"{live_server.url}/admin/registry/modelversion/?model__id__exact={model.pk}")
    page.check(f"input[name=_selected_action][value='{candidate.pk}']")
    page.select_option("select[name=action]", "roll_back")
    page.click("button[name=index]")
    assert "Roll back" in page.inner_text("h2")
    journey.check(page)
    page.fill("#id_reason", "back to v1.0: the retrained version scores lower")
    page.click("input[type=submit][value=Confirm]")
    page.locator(".messagelist", has_text=f"rolled back to {served_detector}").wait_for()
    page.goto(f"{live_server.url}/admin/registry/registeredmodel/{model.pk}/change/")
    history = Deployment.objects.filter(model=model).order_by("-created_at", "-id")
    assert [(d.action, d.to_version_id) for d in history] == [
        ("rollback", served_detector.pk),
        ("promote", candidate.pk),
        ("promote", served_detector.pk),
    ]
    rows = [
        [cell.strip() for cell in row.locator("td").all_text_contents()]
        for row in page.locator("#deployments-group tbody tr.has_original").all()
    ]
    assert len(rows) == 3, rows
    assert ["Rollback" in cells for cells in rows] == [True, False, False], rows
    assert ["Promote" in cells for cells in rows] == [False, True, True], rows
    assert "back to v1.0: the retrained version scores lower" in rows[0]
    assert "try the retrained version on live traffic" in rows[1]
    page.locator("#deployments-group").scroll_into_view_if_needed()
    journey.step(page, "admin-history", publish="journey-admin-history.png")
    page.goto(f"{live_server.url}/")
    assert f"(version {served_detector.version}) is in production" in page.inner_text("#model-status")
    assert page.errors == []


def test_operator_opens_the_dashboard_a_drift_report_and_acknowledges_an_alert(
    live_server, browser, serve_tabular, model_files, journey, eager
):
    name = scored_model(serve_tabular, model_files)  # real scoring through the API, then the drift check
    report = DriftReport.objects.get(model__name=name)
    rule = AlertRule.objects.filter(kind="drift", model=None, enabled=True).first() or AlertRule.objects.create(
        name="drift detected", kind="drift", comparison=">=", threshold=1, window_minutes=180, severity="warning"
    )
    Channel.objects.get_or_create(name="log", defaults={"kind": "log"})
    evaluate_rules(kinds=["drift"])
    alert = Alert.objects.get(rule=rule, scope=name)
    operator = UserFactory(username="operator", staff=True)
    page = open_page(browser)

    log_in(page, journey, live_server.url, "operator", "/monitoring/")
    journey.step(page, "operator-models")
    page.locator("table.models tr", has_text=name).get_by_role("link", name=name).click()
    page.wait_for_url(f"**/monitoring/models/{name}/")
    assert page.locator("svg.chart").count() >= 1
    journey.step(page, "operator-dashboard", publish="journey-operator-dashboard.png")

    page.get_by_role("link", name="report").first.click()
    page.wait_for_url(f"**/monitoring/drift-reports/{report.pk}/")
    assert f"Drift report #{report.pk}" in page.inner_text("h1")
    journey.step(page, "operator-drift-report", publish="journey-operator-drift.png")

    page.get_by_role("link", name="Alerts", exact=True).click()
    page.wait_for_url("**/alerts/")
    row = page.locator("table.alerts tr", has_text=rule.name)
    assert "Firing" in row.inner_text()
    journey.step(page, "operator-alerts")
    row.get_by_role("link").first.click()
    page.wait_for_url(f"**/alerts/{alert.pk}/")
    journey.check(page)
    page.get_by_role("button", name="Acknowledge").click()
    page.locator(".message", has_text=f"Alert #{alert.pk}: acknowledged.").wait_for()
    assert "acknowledged" in page.inner_text("h1").lower()
    assert "by operator" in page.locator("table.columns tr", has_text="Acknowledged").inner_text()
    journey.step(page, "operator-alert-acknowledged", publish="journey-operator-alert.png")
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED and alert.acknowledged_by == operator
    assert page.errors == []


def test_tabular_user_scores_a_record_and_gets_the_apis_probabilities(
    live_server, browser, serve_tabular, breast_cancer, journey
):
    version = serve_tabular(0)
    record = {name: float(value) for name, value in breast_cancer.iloc[7].items()}
    page = open_page(browser)
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Score", exact=True).click()
    page.wait_for_url("**/scoring/")
    journey.check(page)
    assert f"(version {version.version})" in page.inner_text("#model-status")
    for name, value in record.items():
        page.locator(f"#score-form input[name='{name}']").fill(repr(value))
    page.get_by_role("button", name="Score").click()
    page.locator("#prediction").wait_for()
    shown = {
        cells[0]: float(cells[1])
        for cells in (row.split("\t") for row in page.locator("#prediction tr").all_inner_texts()[1:])
    }

    answer = APIClient().post("/api/v1/tabular/predictions/", {"records": [record]}, format="json")
    assert answer.status_code == 200, answer.content
    expected = answer.json()["predictions"][0]
    assert shown.keys() == expected["probabilities"].keys() == set(version.model.class_names)
    for name, probability in expected["probabilities"].items():
        assert shown[name] == pytest.approx(probability, abs=5e-5)
    assert page.inner_text("#predicted-label") == expected["label"]
    journey.step(page, "tabular-score", publish="journey-tabular-score.png")
    assert page.errors == []


def test_the_accessibility_check_fails_on_a_critical_violation(browser):
    page = browser.new_page()
    page.set_content('<html lang="en"><title>t</title><main><h1>t</h1><img src="x.png"></main></html>')
    with pytest.raises(AssertionError, match=r"critical image-alt on probe: .*elements: img"):
        AccessibilityAudit().check(page, where="probe")
    page.set_content('<html lang="en"><title>t</title><main><h1>t</h1><img src="x.png" alt="a box"></main></html>')
    assert [v.impact for v in AccessibilityAudit().check(page, where="probe")] == []
