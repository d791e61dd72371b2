"""The classification page in a real browser: upload photos, see each one's probabilities drawn as bars,
say the answer was wrong and name the right class, and find the classification in the history."""

from __future__ import annotations

import pytest

from backend.classification.models import Classification, ClassificationFeedback
from mlops.tests.classifier_support import asset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CLASSES = ["cat", "dog", "bird"]


def test_upload_see_the_probabilities_as_bars_and_give_feedback(live_server, browser, serve_classifier, screenshot_dir):
    version = serve_classifier()
    photos = [asset("bus.jpg"), asset("zidane.jpg")]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/classify/")
    assert f"(version {version.version})" in page.inner_text("#model-status")
    page.set_input_files("#file-input", [str(path) for path in photos])
    page.wait_for_function(
        "n => document.querySelectorAll('.result[data-state=done]').length === n", arg=len(photos), timeout=60_000
    )
    for card in page.query_selector_all(".result"):
        row = Classification.objects.get(pk=card.get_attribute("data-classification-id"))
        bars = card.query_selector_all(".bar-row")
        # Every class, best first, each bar as wide as its probability and labelled with it.
        assert [bar.get_attribute("data-class-name") for bar in bars] == [c["class_name"] for c in row.classes]
        assert sorted(bar.get_attribute("data-class-name") for bar in bars) == sorted(CLASSES)
        for bar, score in zip(bars, row.classes, strict=True):
            track = bar.query_selector(".bar-track").bounding_box()["width"]
            fill = bar.query_selector(".bar-fill").bounding_box()["width"]
            assert fill == pytest.approx(track * score["probability"], abs=2)
            assert bar.query_selector(".bar-value").inner_text() == f"{100 * score['probability']:.1f} %"
        assert card.query_selector(".best").inner_text() == row.class_name
        assert f"(version {version.version}) answered in" in card.query_selector(".meta").inner_text()
    page.screenshot(path=str(screenshot_dir / "classify.png"), full_page=True)

    # The first card's answer is wrong: name another class.
    card = page.locator(".result").first
    row = Classification.objects.get(pk=card.get_attribute("data-classification-id"))
    right = next(name for name in CLASSES if name != row.class_name)
    card.locator("select.right-class").select_option(right)
    card.locator("button[data-verdict='wrong']").click()
    page.wait_for_function("el => el.textContent === 'saved'", arg=card.locator(".fb-status").element_handle())

    # The history lists both, with thumbnails; the verdict given is shown as pressed.
    page.goto(f"{live_server.url}/classify/history/")
    assert len(page.query_selector_all(".history-item")) == len(photos)
    item = page.locator(f".history-item[data-classification-id='{row.pk}']")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=item.locator("img").element_handle())
    assert item.locator("button[data-verdict='wrong']").get_attribute("aria-pressed") == "true"
    item.locator("button[data-verdict='correct']").click()
    page.wait_for_function("el => el.textContent === 'saved'", arg=item.locator(".fb-status").element_handle())
    page.screenshot(path=str(screenshot_dir / "classify-history.png"), full_page=True)
    assert errors == []
    page.close()

    verdicts = ClassificationFeedback.objects.filter(classification=row).order_by("id")
    assert [(f.verdict, f.correct_class) for f in verdicts] == [("wrong", right), ("correct", "")]
