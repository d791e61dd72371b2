import os
import shutil
from pathlib import Path

import pytest

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
