"""Browser helpers for every page's tests: headless Debian Chromium driven by Playwright (the fixtures
`chromium` and `browser_page` live in the root conftest.py, one browser for the whole session).

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
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("MDMS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
# Screenshots for docs/screenshots/ are written only when this is set (a normal run changes no file).
SCREENSHOTS = os.environ.get("MDMS_SCREENSHOTS", "") not in ("", "0")
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


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
