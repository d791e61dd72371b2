import os
import shutil
import warnings
from pathlib import Path

import pytest

from tests.browser.a11y import AccessibilityAudit
from tests.factories import VersionFactory

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser(monkeypatch):
    """Debian's chromium driven by Playwright (its own browser downloads are never used)."""
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.fail("chromium is not installed: apt-get install -y chromium (make test does it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls of the test stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def served_detector(trained_detector, unique_name, settings):
    settings.DEFAULT_DETECTION_MODEL = unique_name
    return VersionFactory(name=unique_name, files=trained_detector.files, promoted=True)


@pytest.fixture
def screenshot_dir(tmp_path):
    os.makedirs(tmp_path / "screenshots", exist_ok=True)
    return tmp_path / "screenshots"


class Journey:
    """The steps of a person's journey through the pages: each step is checked with axe-core and
    photographed (full page) into the test's screenshot_dir; steps named for publishing are also saved,
    at the viewport's size, into $SCREENSHOTS_DIR when it is set (docs/screenshots/ for the README)."""

    def __init__(self, screenshot_dir: Path):
        self.screenshot_dir = screenshot_dir
        published = os.environ.get("SCREENSHOTS_DIR")
        self.published_dir = Path(published).resolve() if published else None
        self.audit = AccessibilityAudit()

    def check(self, page) -> None:
        """A page passed through on the way: checked, not photographed."""
        self.audit.check(page)

    def step(self, page, name: str, *, publish: str | None = None) -> None:
        self.audit.check(page, where=f"{name} ({page.url})")
        page.screenshot(path=str(self.screenshot_dir / f"{name}.png"), full_page=True)
        if publish and self.published_dir:
            self.published_dir.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(self.published_dir / publish), full_page=False)


@pytest.fixture
def journey(screenshot_dir):
    journey = Journey(screenshot_dir)
    yield journey
    (screenshot_dir / "accessibility.txt").write_text("".join(f"{v}\n" for v in journey.audit.violations))
    serious = journey.audit.serious()
    if serious:  # reported, not failed: only critical violations fail a journey
        warnings.warn("serious accessibility violations:\n" + "\n".join(map(str, serious)), stacklevel=1)
