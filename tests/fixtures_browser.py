"""A real browser for the printed side: headless Debian Chromium driven by playwright, QR codes
read back from the rendered pixels by zbar's `zbarimg`. Skipped, with the reason, where absent."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUMS = ("chromium", "chromium-browser")
# Headless and quiet: no sandbox (CI runs as root), no GPU, nothing fetched in the background.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")


@dataclass
class RenderedPage:
    """What the browser did with one HTML file: every request and every QR code it shows."""

    requests: list[str] = field(default_factory=list)
    qr_codes: list[tuple[str, str]] = field(default_factory=list)  # (decoded text, text beside)

    @property
    def external(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]


class Browser:
    """Opens local HTML files offline (any request leaving the file is recorded and aborted)."""

    def __init__(self, browser) -> None:
        self._browser = browser

    def render(self, path: Path, png: Path | None = None) -> RenderedPage:
        result = RenderedPage()
        viewport = {"width": 1100, "height": 1400}
        context = self._browser.new_context(device_scale_factor=3, viewport=viewport)
        page = context.new_page()
        page.on("request", lambda request: result.requests.append(request.url))
        page.route("**/*", lambda route: route.continue_()
                   if route.request.url.startswith(LOCAL_SCHEMES) else route.abort())  # fmt: skip
        page.goto(path.resolve().as_uri(), wait_until="networkidle")
        if png is not None:
            page.screenshot(path=str(png), full_page=True)
        codes = page.locator('svg[aria-label^="sha256:"]')
        for index in range(codes.count()):
            code = codes.nth(index)
            beside = code.evaluate("e => (e.closest('.fp, tr') || e.parentElement).innerText")
            result.qr_codes.append((decode_qr(code.screenshot()), beside))
        context.close()
        return result


def decode_qr(png: bytes) -> str:
    """The text of the one QR code in a PNG image, as zbarimg reads it ("" when none)."""
    with tempfile.NamedTemporaryFile(suffix=".png") as image:
        image.write(png)
        image.flush()
        done = subprocess.run(["zbarimg", "--raw", "-q", image.name], capture_output=True,
                              text=True, check=False)  # fmt: skip
    return done.stdout.strip()


def printed_hex(text: str) -> str:
    """The grouped upper-case hex fingerprint printed beside a QR code, as one lower-case string."""
    groups = re.findall(r"\b[0-9A-F]{4}\b", text)
    return "".join(groups[:16]).lower()


def chromium_path() -> str:
    """The system Chromium (nothing is downloaded), or skip saying how to install it."""
    chromium = next((shutil.which(name) for name in CHROMIUMS if shutil.which(name)), None)
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian package chromium; `make` installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return chromium


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless system Chromium under playwright, for the session."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def browser(chromium: Any) -> Browser:
    if shutil.which("zbarimg") is None:
        pytest.skip("zbarimg is not installed (Debian package zbar-tools; `make` installs it)")
    return Browser(chromium)
