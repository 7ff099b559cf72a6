"""The wall screen in a real browser: Debian's headless Chromium, driven by Playwright (which
downloads no browser of its own). Without Chromium a browser test fails and says how to get it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path(os.environ.get("PROMO_CHROMIUM", "/usr/bin/chromium"))


@contextmanager
def wall_page() -> Iterator[Page]:
    """A 1920×1080 page (the war room's screen) in a browser that is closed afterwards."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make install` installs Debian's (apt-get install chromium); "
            "or point PROMO_CHROMIUM at one"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser.new_page(viewport={"width": 1920, "height": 1080})
        finally:
            browser.close()
