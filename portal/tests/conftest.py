"""Browser fixtures for every portal page's tests: headless Debian Chromium driven by Playwright.

Use them as

    @pytest.mark.browser
    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("role_groups")   # before alice: the flush of an earlier test empties auth_group
    def test_...(live_server, browser_page, alice):
        log_in(browser_page, live_server.url, "alice", "alice-pw")

Chromium is the system's /usr/bin/chromium (never a downloaded browser); set MDMS_CHROMIUM to
use another binary. Without one the browser tests fail (never skip): `make test` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MDMS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
# Screenshots for docs/screenshots/ are written only when this is set (a normal run changes no file).
SCREENSHOTS = os.environ.get("MDMS_SCREENSHOTS", "") not in ("", "0")
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `python scripts/services.py test-tools` (make test does)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on the main thread, and Django then refuses ORM
    # calls from that thread (database setup, factories). The test code is synchronous; the loop
    # only drives the browser, so the guard does not apply.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh page (own cookies) at desktop size; page.set_viewport_size(PHONE) for a phone."""
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def log_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Log in through the real login form, as a person would."""
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state("networkidle")


def screenshot(page: Any, name: str) -> Path | None:
    """Save docs/screenshots/<name>.png (the whole page) when MDMS_SCREENSHOTS is set."""
    if not SCREENSHOTS:
        return None
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
