"""The rendered mail in real headless Chromium (Debian's `chromium`, driven by Playwright):
at 600 px (desktop) and 375 px (mobile) it never scrolls sideways, hidden-on-mobile blocks
are hidden at 375 and shown at 600, hidden-on-desktop blocks the other way round, stacked
columns sit one above the other on mobile; with a dark colour scheme the page and its text
take the dark palette and blocks their own dark colours. Screenshots go to
`.artifacts/rendering/`.

Skips when chromium or Playwright is missing, except under CI=true, where it fails.
Images are answered by the test itself (a small PNG), so the page makes no real request.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib.rendering import compile_template, personalize
from tests.chromium import ARGS, CHROMIUM
from tests.chromium import unavailable as _unavailable

from .samples import kitchen_sink, render

ARTIFACTS = Path(__file__).resolve().parents[3] / ".artifacts" / "rendering"


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # the dev extras install it
        _unavailable("Playwright is not installed")
    if not CHROMIUM.exists():
        _unavailable(f"Debian's chromium ({CHROMIUM}) is not installed")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def mail() -> str:
    compiled = compile_template(render(kitchen_sink(), preheader="Preview text"))
    variables = {"firstName": "Ada", "email": "ada@example.com", "confirmUrl": "https://e.x/c"}
    return personalize(compiled, variables).html


def _open(browser: Any, html: str, width: int, scheme: str = "light") -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    image = _png(40, 24, (148, 163, 184))
    page.route(
        "**/*",
        lambda route: route.fulfill(status=200, content_type="image/png", body=image),
    )
    page.set_content(html, wait_until="load")
    return page


def _visible(page: Any, selector: str) -> bool:
    return bool(
        page.eval_on_selector(
            selector,
            "e => { const r = e.getBoundingClientRect();"
            " return getComputedStyle(e).display !== 'none' && r.height > 0 }",
        )
    )


@pytest.mark.parametrize("width", [600, 375])
def test_layout_at_width(browser: Any, mail: str, width: int) -> None:
    page = _open(browser, mail, width)
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"kitchen-sink-{width}.png"), full_page=True)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page scrolls {overflow}px sideways at {width}px"
        mobile = width < 480
        assert _visible(page, ".probe-hidden-mobile") is not mobile
        assert _visible(page, ".probe-hidden-desktop") is mobile
        columns = page.eval_on_selector_all(
            ".owlat-col", "cols => cols.map(c => c.getBoundingClientRect().top)"
        )
        assert len(columns) == 2
        stacked = columns[1] > columns[0] + 10
        assert stacked is mobile, f"columns stacked={stacked} at {width}px"
    finally:
        page.close()


def test_dark_mode(browser: Any, mail: str) -> None:
    page = _open(browser, mail, 600, scheme="dark")
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "kitchen-sink-600-dark.png"), full_page=True)
        color = "e => getComputedStyle(e).color"
        background = "e => getComputedStyle(e).backgroundColor"
        assert page.eval_on_selector("body", background) == "rgb(18, 18, 18)"
        assert page.eval_on_selector(".owlat-text", color) == "rgb(228, 228, 231)"
        # the container's own `darkMode` overrides: background, text, border and links
        boxed = page.locator("td[class^=owlat-b]", has_text="Inside a container").first
        assert boxed.evaluate(background) == "rgb(30, 27, 75)"
        assert boxed.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(67, 56, 202)"
        assert boxed.locator(".owlat-text").evaluate(color) == "rgb(224, 231, 255)"
        assert boxed.locator("a").first.evaluate(color) == "rgb(251, 191, 36)"
    finally:
        page.close()


def test_dark_mode_overrides_apply_only_in_dark_mode(browser: Any, mail: str) -> None:
    page = _open(browser, mail, 600)
    try:
        boxed = page.locator("td[class^=owlat-b]", has_text="Inside a container").first
        background = "e => getComputedStyle(e).backgroundColor"
        assert boxed.evaluate(background) == "rgb(238, 242, 255)"  # its light #eef2ff
        assert boxed.locator("a").first.evaluate("e => getComputedStyle(e).color") == (
            "rgb(37, 99, 235)"  # links' light #2563eb
        )
    finally:
        page.close()
