"""Fixtures for the dashboard's tests: its build (and node_modules) made once per run by
`scripts/build-web --if-stale`, which CI runs first (.ci/run); the real server serving it;
Debian's Chromium through Playwright; `Screens`, which checks and photographs each screen.

Without Node.js 20.19+ or Chromium the tests that need them skip, except under CI=true,
where they fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from owlat.cli._shared import dashboard
from owlat.config import Settings
from tests.app.conftest import Site, start_site
from tests.chromium import ARGS, CHROMIUM, unavailable

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, ViewportSize

    from owlat.runtime.server import WebApp

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
BUILD = ROOT / "src" / "owlat" / "web"
ARTIFACTS = ROOT / ".artifacts" / "web"
NO_NODE = 3  # scripts/build-web's status when Node.js or npm is missing or too old


@pytest.fixture(scope="session")
def built_web() -> Path:
    """web/ with its node_modules installed and its build in src/owlat/web/ current."""
    if shutil.which("node") is None:
        unavailable("Node.js is not installed: the dashboard cannot be built")
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-web"), "--if-stale"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode == NO_NODE:
        unavailable(done.stderr.strip())
    assert done.returncode == 0, done.stdout + done.stderr
    return WEB


@dataclasses.dataclass
class Screens:
    """Checks every screen it is shown: axe-core (npm `axe-core`, injected into each page)
    finds no serious or critical violation at desktop and mobile widths, at mobile width
    nothing is wider than the page (neither the page nor a table's stacked rows scroll
    sideways), and a screenshot of each width goes to `.artifacts/web/NAME-desktop.png` /
    `-mobile.png`. Console errors and uncaught exceptions of every page it watches are
    collected in `errors`."""

    directory: Path
    errors: list[str] = dataclasses.field(default_factory=list)
    pages: list[Page] = dataclasses.field(default_factory=list)

    def watch(self, page: Page) -> Page:
        self.pages.append(page)
        page.on(
            "console",
            lambda m: self.errors.append(f"{page.url}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page

    async def check(self, page: Page, name: str) -> None:
        desktop = page.viewport_size
        for label, size in (("desktop", DESKTOP), ("mobile", MOBILE)):
            await page.set_viewport_size(size)
            # from the top: scrolled, the fixed app bar would be drawn mid-page
            await page.evaluate("window.scrollTo(0, 0)")
            await settle(page)
            violations = await page.evaluate(_AXE)
            assert violations == [], f"{name} ({label}): {violations}"
            if size is MOBILE:
                wide = await page.evaluate(_WIDER_THAN_THE_PAGE)
                assert wide == [], f"{name} (mobile) scrolls sideways: {wide}"
            await page.screenshot(
                path=self.directory / f"{name}-{label}.png", full_page=True, animations="disabled"
            )
        await page.set_viewport_size(desktop or DESKTOP)


async def settle(page: Page) -> None:
    """Let the page's layout follow and its transitions end (a dialog focuses its
    autofocus field when its opening transition ends: text typed earlier can land there)."""
    await page.evaluate(_FINISH_TRANSITIONS)
    await page.evaluate(_FINISH_TRANSITIONS)


DESKTOP: ViewportSize = {"width": 1280, "height": 800}
MOBILE: ViewportSize = {"width": 390, "height": 844}
# after a resize: two frames for the layout to follow, then transitions at their end
_FINISH_TRANSITIONS = """async () => {
  for (let i = 0; i < 2; i++) await new Promise((done) => requestAnimationFrame(done));
  document.getAnimations().forEach((a) => {
    if (a.effect?.getComputedTiming().endTime !== Infinity) a.finish();
  });
}"""
# the page and the tables' scrolling wrappers wider than they show (a stacked table row
# whose value does not wrap is cut off inside its wrapper, not seen at the page's width)
_WIDER_THAN_THE_PAGE = """() =>
  [document.documentElement, ...document.querySelectorAll(".v-table__wrapper")]
    .filter((element) => element.scrollWidth > element.clientWidth + 1)
    .map((element) =>
      `${element.className || element.tagName}: ${element.scrollWidth} > ${element.clientWidth}`)
"""
# serious and critical violations, each as "rule: target (impact)"
_AXE = """async () => {
  const { violations } = await axe.run(document, { resultTypes: ["violations"] });
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")} (${v.impact})`));
}"""


@pytest.fixture
async def browser(built_web: Path) -> AsyncIterator[Browser]:
    """Debian's Chromium, driven by Playwright (never `playwright install`)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # the dev extras install it
        unavailable("Playwright is not installed")
    if not CHROMIUM.exists():
        unavailable(f"Debian's chromium ({CHROMIUM}) is not installed")
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield instance
        await instance.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def screens(request: pytest.FixtureRequest, browser: Browser) -> AsyncIterator[Screens]:
    """A test's `Screens`; when the test fails, each page it watched is photographed as
    `failed-N.png` beside the screens."""
    directory = ARTIFACTS / request.node.name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    watched = Screens(directory)
    yield watched
    if request.node.stash.get(_FAILED, False):
        for number, page in enumerate(watched.pages):
            with contextlib.suppress(Exception):
                await page.screenshot(path=directory / f"failed-{number}.png")


@contextlib.asynccontextmanager
async def start_dashboard_site(data_dir: Path, **options: Any) -> AsyncIterator[Site]:
    """`start_site` with the built dashboard at / of its site port (as `owlat dev`)."""

    def web(client_url: str) -> WebApp | None:
        return dashboard("owlat.app", Settings(web_dir=BUILD), client_url)

    async with start_site(data_dir, web=web, **options) as site:
        yield site


@pytest.fixture
async def dashboard_site(tmp_path: Path, built_web: Path) -> AsyncIterator[Site]:
    """The real server with the built dashboard at / of its site port (as `owlat dev`)."""
    async with start_dashboard_site(tmp_path) as site:
        yield site


async def new_page(browser: Browser, screens: Screens) -> Page:
    """A page in a new browser context (its own cookies: another browser), with axe-core
    loaded before the app's scripts (an init script: the page's CSP does not apply)."""
    context = await browser.new_context(viewport=DESKTOP)
    await context.add_init_script(path=str(WEB / "node_modules" / "axe-core" / "axe.min.js"))
    return screens.watch(await context.new_page())
