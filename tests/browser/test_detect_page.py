"""The upload page in a real browser: upload images, see the boxes drawn, filter them with the slider,
look at the heatmap, and give feedback on the history page."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from backend.detection.models import Detection, Feedback
from tests.support import image_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PALETTE = ["#e6194b", "#3cb44b", "#0082c8", "#f58230", "#911eb4", "#46f0f0", "#f032e6", "#d2f53c", "#008080", "#aa6e28"]

# Counts the canvas pixels painted in a class colour of the boxes the card shows.
COUNT_BOX_PIXELS = """
([card, colours]) => {
  const canvas = card.querySelector("canvas");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const targets = colours.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  let count = 0;
  for (let p = 0; p < data.length; p += 4) {
    const near = ([r, g, b]) => Math.abs(data[p] - r) + Math.abs(data[p + 1] - g) + Math.abs(data[p + 2] - b) < 12;
    if (targets.some(near)) count += 1;
  }
  return count;
}
"""


def upscaled_samples(samples, directory: Path, count: int = 3) -> list[Path]:
    """Held-out shapes images enlarged 5x, so the page (and its screenshot) shows them at a readable size."""
    paths = []
    for sample in samples[:count]:
        image = Image.open(sample).convert("RGB")
        path = directory / f"{sample.stem}.png"
        path.write_bytes(image_bytes(image.resize((image.width * 5, image.height * 5), Image.Resampling.BILINEAR)))
        paths.append(path)
    return paths


def test_upload_see_boxes_filter_with_the_slider_and_give_feedback(
    live_server, browser, served_detector, trained_detector, tmp_path, screenshot_dir
):
    images = upscaled_samples(trained_detector.samples, tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    api_posts: list[str] = []
    page.on("request", lambda r: api_posts.append(r.url) if r.method == "POST" and "/detections/" in r.url else None)

    page.goto(f"{live_server.url}/")
    assert served_detector.model.name in page.inner_text("#model-status")
    page.set_input_files("#file-input", [str(path) for path in images])
    page.wait_for_function(
        "n => document.querySelectorAll('.result[data-state=done]').length === n", arg=len(images), timeout=60_000
    )
    assert len(api_posts) == len(images)

    cards = page.query_selector_all(".result")
    totals = [int(card.get_attribute("data-boxes")) for card in cards]
    assert sum(totals) > 0, "the trained detector found no shape in the uploaded images"
    card = cards[totals.index(max(totals))]
    detection = Detection.objects.get(pk=card.get_attribute("data-detection-id"))
    colours = sorted({PALETTE[box["class_id"] % len(PALETTE)] for box in detection.boxes})
    meta = card.query_selector(".meta").inner_text()
    assert f"{served_detector.model.name} v1.0 (version {served_detector.version})" in meta and " ms" in meta

    # At the lowest threshold every box is listed and drawn.
    page.locator("#threshold").fill("0.05")
    shown = int(card.get_attribute("data-visible-boxes"))
    assert shown == len([b for b in detection.boxes if b["confidence"] >= 0.05]) == len(card.query_selector_all("li"))
    drawn = page.evaluate(COUNT_BOX_PIXELS, [card, colours])
    assert drawn > 50
    page.screenshot(path=str(screenshot_dir / "detect.png"), full_page=True)

    # Sliding to 1.0 hides every box, in the page: no new request, no box pixels left on the canvas.
    page.locator("#threshold").fill("1")
    assert card.get_attribute("data-visible-boxes") == "0" and card.query_selector_all("li") == []
    assert page.evaluate(COUNT_BOX_PIXELS, [card, colours]) < drawn / 10
    assert page.inner_text("#threshold-value") == "1.00"
    page.locator("#threshold").fill("0.05")
    assert int(card.get_attribute("data-visible-boxes")) == shown
    assert len(api_posts) == len(images)

    # The heatmap view replaces the canvas with the server's density picture.
    page.check("#show-heatmap")
    heatmap = card.query_selector("img.heatmap")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=heatmap, timeout=30_000)
    assert heatmap.is_visible() and not card.query_selector("canvas").is_visible()
    page.uncheck("#show-heatmap")

    # History: the uploads are there with thumbnails; feedback is stored.
    page.goto(f"{live_server.url}/history/")
    items = page.query_selector_all(".history-item")
    assert len(items) == len(images)
    item = page.locator(f".history-item[data-detection-id='{detection.pk}']")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=item.locator("img").element_handle())
    item.locator(".verdict[data-box-index=''] button[data-verdict='correct']").click()
    page.wait_for_function(
        "el => el.textContent === 'saved'", arg=item.locator(".verdict[data-box-index=''] .fb-status").element_handle()
    )
    item.locator("details summary").click()
    first_box = item.locator(".verdict[data-box-index='0']")
    first_box.locator("select.right-class").select_option("2")
    first_box.locator("button[data-verdict='wrong']").click()
    page.wait_for_function("el => el.textContent === 'saved'", arg=first_box.locator(".fb-status").element_handle())
    page.screenshot(path=str(screenshot_dir / "history.png"), full_page=True)
    assert errors == []
    page.close()

    verdicts = list(Feedback.objects.filter(detection=detection).order_by("id"))
    assert [(f.box_index, f.verdict, f.correct_class_name) for f in verdicts] == [
        (None, "correct", ""),
        (0, "wrong", "triangle"),
    ]
    assert verdicts[0].min_confidence == pytest.approx(0.25)


def test_the_page_says_when_no_model_is_in_production(live_server, browser, settings):
    settings.DEFAULT_DETECTION_MODEL = "nothing-in-production"
    page = browser.new_page()
    page.goto(f"{live_server.url}/")
    assert "There is no model named" in page.inner_text("#model-status")
    page.close()
