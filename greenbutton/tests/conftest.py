"""The portal's browser fixtures (Debian's Chromium through Playwright), for the Connect flow's test."""

from portal.tests.conftest import browser_page, chromium

__all__ = ["browser_page", "chromium"]
