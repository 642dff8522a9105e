"""The dashboard's Contacts screen with N contacts, in a real browser (issue 18), next to a
server-rendered baseline measured in the same run and the same browser.

    .venv/bin/python bench/bench_dashboard.py [--contacts 100000] [--repeat 5]

Owlat: `owlat serve` (production settings: SQLite, uvloop + httptools, the built dashboard
at / of the site port) on a fresh data folder. A user signs up and creates an organization
over the BetterAuth endpoints the dashboard calls (/api/auth/sign-up/email,
/api/auth/organization/create). The N contacts (`user0000000@example.com`, First{i},
Last{i:07d}) are seeded with `owlat contacts import` (the admin path of the dashboard's CSV
import: upload URL, `contactImports:startForOrganization`, the same worker batches; seeding
time is printed, it is not a figure). Then, in headless Chromium (Debian's, driven by
Playwright; the flags of tests/chromium.py), the user signs in through the sign-in screen.

Baseline: a plain Starlette app on uvicorn (a subprocess, same uvicorn settings) over a
stdlib `sqlite3` table of the same N contacts (email, name and last name with NOCASE
indexes, a (created, id) index): /contacts is a static HTML page whose 25-row table is
built server-side from one query (newest first); its search box fetches /rows?q= on each
input event (an AbortController drops stale answers) and the server answers the rows
(email LIKE 'q%', then name or last name LIKE 'q%', all on indexes) as HTML for the tbody;
/members is a static page linking to /contacts.

Measured with the browser's own clock: an init script runs a MutationObserver on every
document and, when the table labelled "Contacts" holds exactly the expected rows (the
emails of its first page, or of a search's matches: old rows gone), marks
`performance.mark("bench-rows")`; times are read from performance entries:
(a) cold load of /contacts in a new tab of the signed-in browser (HTTP cache warm):
navigation start (PerformanceNavigationTiming, 0) → the mark; (a') the same in a new
browser context holding only the session cookie (empty HTTP cache);
(b) from another screen (Members): the click event's timestamp on the Contacts link →
the mark (Owlat: in-app navigation; baseline: a full page load, across documents through
`performance.timeOrigin`);
(c) search by email prefix and by last-name prefix (10 matches each), typed at 30 ms per
key: the last keydown event's timestamp → the mark (Owlat waits 60 ms after a keystroke
before it asks, SEARCH_DELAY_MS in ContactsView.vue; the baseline asks at once);
each `--repeat` times, median and max.
(d) the built JavaScript a first visit loads: every .js response, each gzipped at level 6,
from opening / until the sign-in button is visible, and from opening /contacts (signed in,
empty cache) until its first page is in the DOM; budget 300 KB (the baseline's page has
only an inline script).
Goals (issue 18): first page ≤ 1 s after navigation, search results ≤ 300 ms after the last
keystroke, first-screen JavaScript ≤ 300 KB gzip. The load average is printed before and
after: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gzip
import html
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import PYTHON, ROOT, _run, uvicorn_config

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Response

PAGE_SIZE = 25
KEY_DELAY_MS = 30
EMAIL = "owner@bench.example.com"
PASSWORD = "a-long-password"
LOAD_GOAL_MS = 1000.0
SEARCH_GOAL_MS = 300.0
JS_BUDGET = 300_000

# -- the contacts ---------------------------------------------------------------------------


def contact(i: int) -> tuple[str, str, str]:
    """Contact i: email, first name, last name."""
    return f"user{i:07d}@example.com", f"First{i}", f"Last{i:07d}"


def write_csv(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as file:
        file.write("email,first_name,last_name\n")
        file.writelines(f"{e},{f},{la}\n" for e, f, la in map(contact, range(count)))


def search_terms(count: int) -> dict[str, tuple[str, list[str]]]:
    """Per search kind: the term (10 matches) and the matching emails, sorted."""
    email_base = count * 42 // 100 // 10 * 10
    name_base = count * 87 // 100 // 10 * 10
    email_term = contact(email_base)[0][:10]  # "user00420" + the tens digit
    name_term = contact(name_base)[2][:10].lower()  # "last00870" + the tens digit
    terms = {}
    for kind, term in (("email", email_term), ("name", name_term)):
        matches = []
        for i in range(count):
            email, first, last = contact(i)
            keys = (email, f"{first} {last}".lower(), last.lower())
            if any(key.startswith(term) for key in keys):
                matches.append(email)
        terms[kind] = (term, sorted(matches))
    return terms


# -- the baseline -----------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT COLLATE NOCASE, first TEXT,
  last TEXT, name_key TEXT COLLATE NOCASE, last_key TEXT COLLATE NOCASE, created REAL);
CREATE INDEX c_email ON contacts (email);
CREATE INDEX c_name ON contacts (name_key);
CREATE INDEX c_last ON contacts (last_key);
CREATE INDEX c_created ON contacts (created, id);
"""


def build_raw(path: Path, count: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(SCHEMA)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO contacts (id, email, first, last, name_key, last_key, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (i + 1, e, f, la, f"{f} {la}".lower(), la.lower(), 1.7e12 + i)
            for i, (e, f, la) in enumerate(map(contact, range(count)))
        ),
    )
    db.execute("COMMIT")
    db.close()


RAW_SCRIPT = """
const box = document.getElementById("q");
const body = document.querySelector("tbody");
let pending;
box.addEventListener("input", async () => {
  pending?.abort();
  pending = new AbortController();
  try {
    const answer = await fetch("/rows?q=" + encodeURIComponent(box.value.trim()),
                               { signal: pending.signal });
    body.innerHTML = await answer.text();
  } catch (error) {
    if (error.name !== "AbortError") throw error;
  }
});
"""


def raw_page(title: str, main: str, script: str = "") -> str:
    nav = '<nav><a href="/contacts">Contacts</a> <a href="/members">Members</a></nav>'
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
        f"</head><body>{nav}<h1>{title}</h1>{main}"
        f"{f'<script>{script}</script>' if script else ''}</body></html>"
    )


def raw_app(database: Path) -> Any:
    """/contacts (the first page rendered server-side), /rows?q= (tbody HTML), /members."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    columns = "id, email, first, last, created"

    def rows(term: str) -> str:
        if not term:
            found = db.execute(
                f"SELECT {columns} FROM contacts ORDER BY created DESC, id DESC LIMIT ?",
                (PAGE_SIZE,),
            ).fetchall()
        else:
            like = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            found = db.execute(
                f"SELECT {columns} FROM contacts WHERE email LIKE ? ESCAPE '\\' "
                "ORDER BY email LIMIT ?",
                (like, PAGE_SIZE),
            ).fetchall()
            if len(found) < PAGE_SIZE:
                found += db.execute(
                    f"SELECT {columns} FROM contacts WHERE (name_key LIKE ?1 ESCAPE '\\' "
                    "OR last_key LIKE ?1 ESCAPE '\\') AND NOT email LIKE ?1 ESCAPE '\\' "
                    "ORDER BY name_key LIMIT ?2",
                    (like, PAGE_SIZE - len(found)),
                ).fetchall()
        if not found:
            return '<tr><td colspan="3">No contact matches.</td></tr>'
        day = time.strftime("%Y-%m-%d", time.gmtime(found[0][4] / 1000))
        return "".join(
            f'<tr><td><a href="/contacts/{i}">{html.escape(e)}</a></td>'
            f"<td>{html.escape(f)} {html.escape(la)}</td><td>{day}</td></tr>"
            for i, e, f, la, _ in found
        )

    async def contacts(request: Request) -> HTMLResponse:
        table = (
            '<input id="q" type="search" aria-label="Search by email or name">'
            '<table aria-label="Contacts"><thead><tr><th>Email</th><th>Name</th>'
            f"<th>Added</th></tr></thead><tbody>{rows('')}</tbody></table>"
        )
        return HTMLResponse(raw_page("Contacts", table, RAW_SCRIPT))

    async def search(request: Request) -> HTMLResponse:
        return HTMLResponse(rows(request.query_params.get("q", "")))

    async def members(request: Request) -> HTMLResponse:
        table = f"<table><tbody><tr><td>{EMAIL}</td><td>owner</td></tr></tbody></table>"
        return HTMLResponse(raw_page("Members", table))

    return Starlette(
        routes=[
            Route("/contacts", contacts),
            Route("/rows", search),
            Route("/members", members),
        ]
    )


def first_raw_page(database: Path) -> list[str]:
    db = sqlite3.connect(database)
    found = db.execute(
        "SELECT email FROM contacts ORDER BY created DESC, id DESC LIMIT ?", (PAGE_SIZE,)
    ).fetchall()
    db.close()
    return sorted(row[0] for row in found)


# -- processes --------------------------------------------------------------------------------


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextlib.contextmanager
def raw_server(database: Path, info: Path) -> Iterator[str]:
    """The baseline in its own process; its URL."""
    args = [PYTHON, __file__, "raw", "--database", str(database), "--info", str(info)]
    child = subprocess.Popen(args, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not info.exists():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the baseline did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
    finally:
        _stop(child)


@contextlib.contextmanager
def owlat_serve(data_dir: Path) -> Iterator[dict[str, str]]:
    """`owlat serve` of owlat.app on free ports; its client and site URLs."""
    log = data_dir.parent / "owlat.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OWLAT_APP": "owlat.app"}
    args = [PYTHON, "-m", "owlat.cli", "serve", "--port", "0", "--site-port", "0"]
    with log.open("wb") as output:
        child = subprocess.Popen(
            [*args, "--data-dir", str(data_dir)], env=env, cwd=ROOT, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 60
        while "HTTP actions on" not in log.read_text():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("owlat serve did not start:\n" + log.read_text())
            time.sleep(0.05)
        banner = log.read_text().split("Owlat is serving ", 1)[1]
        client_url = banner.split(" ", 1)[0]
        site_url = banner.split("HTTP actions on ", 1)[1].split(")", 1)[0]
        yield {"url": client_url, "site_url": site_url, "log": str(log)}
    finally:
        _stop(child)


async def set_up_owlat(owlat: dict[str, str], data_dir: Path, csv: Path) -> tuple[Any, float]:
    """Sign up + organization over HTTP, the CSV imported; the account and seconds seeding."""
    from tests.e2e.owlat_app import sign_up

    account = await sign_up(owlat["url"], owlat["site_url"], slug="bench")
    started = time.perf_counter()
    with (data_dir.parent / "import.log").open("wb") as output:
        done = await asyncio.create_subprocess_exec(
            *[PYTHON, "-m", "owlat.cli", "contacts", "import", str(csv), "--org", "bench"],
            *["--url", owlat["url"], "--data-dir", str(data_dir)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            stdout=output,
            stderr=output,
        )
        if await done.wait() != 0:
            raise RuntimeError(
                "the import failed:\n" + (data_dir.parent / "import.log").read_text()
            )
    return account, time.perf_counter() - started


# -- the browser ------------------------------------------------------------------------------

# On every document: the expectation (sorted emails) and the time they were all in the
# Contacts table (a performance mark), the last keydown's time, the last click's time
# (sessionStorage: it survives a full page load).
OBSERVER = """(() => {
  const emails = () => Array.from(
    document.querySelectorAll('[aria-label="Contacts"] tbody tr'),
    (row) => (row.querySelector("td")?.textContent ?? "").trim(),
  ).sort();
  const bench = (window.__bench = {
    want: null,
    at: null,
    key: null,
    expect(list) {
      this.want = JSON.stringify(list);
      this.at = null;
      this.check();
    },
    check() {
      const want = this.want ?? (window.__benchWant ? JSON.stringify(window.__benchWant) : null);
      if (want === null || this.at !== null) return;
      if (JSON.stringify(emails()) === want) this.at = performance.mark("bench-rows").startTime;
    },
  });
  new MutationObserver(() => bench.check()).observe(document, {
    childList: true, subtree: true, characterData: true,
  });
  addEventListener("keydown", (event) => (bench.key = event.timeStamp), true);
  addEventListener("click", (event) => sessionStorage.setItem(
    "benchClick", String(performance.timeOrigin + event.timeStamp)), true);
})();"""

ARRIVED = "() => window.__bench && window.__bench.at !== null"


async def new_context(browser: Browser, cookies: list[Any] | None = None) -> BrowserContext:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    await context.add_init_script(OBSERVER)
    if cookies:
        await context.add_cookies(cookies)
    return context


async def cold_load(
    context: BrowserContext, url: str, want: list[str], timings: list[dict[str, float]]
) -> float:
    """Navigation start → the expected rows, in a new tab of `context` (ms); the tab's
    PerformanceNavigationTiming milestones are appended to `timings`."""
    page = await context.new_page()
    await page.add_init_script(f"window.__benchWant = {json.dumps(want)};")
    await page.goto(url)
    await page.wait_for_function(ARRIVED, timeout=60_000)
    await page.wait_for_function("performance.getEntriesByType('navigation')[0].loadEventEnd > 0")
    entry = await page.evaluate(
        "(() => { const n = performance.getEntriesByType('navigation')[0];"
        " return { start: n.startTime, response: n.responseEnd,"
        " dom: n.domContentLoadedEventEnd, load: n.loadEventEnd,"
        " rows: window.__bench.at }; })()"
    )
    await page.close()
    timings.append({k: float(v) - float(entry["start"]) for k, v in entry.items()})
    return float(entry["rows"]) - float(entry["start"])


async def navigate(page: Page, link: str, want: list[str]) -> float:
    """The click on `link` → the expected rows (ms; across documents by timeOrigin)."""
    await page.evaluate(f"window.__bench.expect({json.dumps(want)})")
    await page.get_by_role("link", name=link, exact=True).click()
    await page.wait_for_function(ARRIVED, timeout=60_000)
    return float(
        await page.evaluate(
            "performance.timeOrigin + window.__bench.at - Number(sessionStorage.benchClick)"
        )
    )


async def search(page: Page, term: str, want: list[str], first_page: list[str]) -> float:
    """Typing `term` in an empty search box: the last keydown → exactly its rows (ms)."""
    box = page.get_by_role("searchbox", name="Search by email or name")
    await page.evaluate(f"window.__bench.expect({json.dumps(first_page)})")
    await box.fill("")
    await page.wait_for_function(ARRIVED, timeout=60_000)
    await page.evaluate(f"window.__bench.expect({json.dumps(want)})")
    await box.click()
    await page.keyboard.type(term, delay=KEY_DELAY_MS)
    await page.wait_for_function(ARRIVED, timeout=60_000)
    return float(await page.evaluate("window.__bench.at - window.__bench.key"))


async def javascript(page: Page, url: str, ready: Callable[[], Awaitable[Any]]) -> tuple[int, int]:
    """(gzipped bytes at level 6, files) of the .js `page` fetched opening `url` until
    `ready()` returned."""
    bodies: list[asyncio.Task[bytes]] = []

    def on_response(response: Response) -> None:
        if response.url.split("?", 1)[0].endswith(".js"):
            bodies.append(asyncio.ensure_future(response.body()))

    page.on("response", on_response)
    await page.goto(url)
    await ready()
    page.remove_listener("response", on_response)
    loaded = await asyncio.gather(*bodies)
    return sum(len(gzip.compress(body, compresslevel=6)) for body in loaded), len(loaded)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright
    from tests.chromium import ARGS, CHROMIUM

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def measure(
    browser: Browser,
    base: str,
    first_page: list[str],
    terms: dict[str, tuple[str, list[str]]],
    repeat: int,
    *,
    owlat: bool,
) -> dict[str, Any]:
    """Every figure of one side; lists of ms per repeat, and (bytes, files) of JavaScript."""
    result: dict[str, Any] = {key: [] for key in ("cold", "empty", "nav", "email", "name")}
    timings: list[dict[str, float]] = []
    context = await new_context(browser)
    page = await context.new_page()
    await page.add_init_script(f"window.__benchWant = {json.dumps(first_page)};")
    if owlat:
        result["js_sign_in"] = await javascript(
            page, base + "/", page.get_by_role("button", name="Sign in").wait_for
        )
        await page.get_by_label("Email").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.evaluate(f"window.__bench.expect({json.dumps(first_page)})")
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/contacts")
        await page.wait_for_function(ARRIVED, timeout=120_000)
        cookies = await context.cookies()
    else:
        await page.goto(base + "/contacts")
        cookies = []
    for number in range(repeat + 1):  # the first is a warm-up, not counted
        keep = number > 0
        cold = await cold_load(context, base + "/contacts", first_page, timings)
        fresh = await new_context(browser, cookies)
        if number == 0 and owlat:
            tab = await fresh.new_page()
            await tab.add_init_script(f"window.__benchWant = {json.dumps(first_page)};")
            result["js_contacts"] = await javascript(
                tab,
                base + "/contacts",
                functools.partial(tab.wait_for_function, ARRIVED, timeout=60_000),
            )
            await tab.close()
        empty = await cold_load(fresh, base + "/contacts", first_page, [])
        await fresh.close()
        await page.get_by_role("link", name="Members", exact=True).click()
        await page.wait_for_url("**/members")
        await page.get_by_role("cell", name=EMAIL, exact=True).wait_for()
        nav = await navigate(page, "Contacts", first_page)
        email = await search(page, *terms["email"], first_page)
        name = await search(page, *terms["name"], first_page)
        if keep:
            for key, value in (
                ("cold", cold),
                ("empty", empty),
                ("nav", nav),
                ("email", email),
                ("name", name),
            ):
                result[key].append(value)
    await context.close()
    result["timings"] = {
        key: statistics.median(t[key] for t in timings[1:] or timings)
        for key in ("response", "dom", "load", "rows")
    }
    return result


# -- main -------------------------------------------------------------------------------------


def load() -> str:
    return "/".join(f"{n:.2f}" for n in os.getloadavg())


LINES = (
    ("cold", "(a) cold load /contacts, new tab", LOAD_GOAL_MS),
    ("empty", "(a') the same, empty HTTP cache", LOAD_GOAL_MS),
    ("nav", "(b) Members → Contacts (click)", LOAD_GOAL_MS),
    ("email", "(c) search by email prefix", SEARCH_GOAL_MS),
    ("name", "(c) search by last-name prefix", SEARCH_GOAL_MS),
)


def report(owlat: dict[str, Any], raw: dict[str, Any]) -> None:
    print(f"{'ms, median / max':40} {'Owlat':>15} {'baseline':>15} {'goal':>8}  met (median/max)")
    for key, label, goal in LINES:
        o, r = owlat[key], raw[key]
        med, top = statistics.median(o), max(o)
        met = f"{'yes' if med <= goal else 'no'} / {'yes' if top <= goal else 'no'}"
        print(
            f"{label:40} {med:6.0f} / {top:6.0f} {statistics.median(r):6.0f} / {max(r):6.0f} "
            f"{'≤' + format(goal, '.0f'):>8}  {met}"
        )
    for name, side in (("Owlat", owlat), ("baseline", raw)):
        t = side["timings"]
        print(
            f"(a) {name}, medians from navigation start: HTML received {t['response']:.0f} ms, "
            f"DOMContentLoaded {t['dom']:.0f} ms, load {t['load']:.0f} ms, "
            f"first page in the DOM {t['rows']:.0f} ms"
        )
    for key, label in (("js_sign_in", "sign-in screen"), ("js_contacts", "contacts screen")):
        size, files = owlat[key]
        print(
            f"(d) JavaScript until the {label} is usable: {size / 1000:.1f} KB gzip "
            f"({files} files; baseline: none, an inline script of {len(RAW_SCRIPT)} B); "
            f"budget ≤ {JS_BUDGET / 1000:.0f} KB: {'yes' if size <= JS_BUDGET else 'no'}"
        )


async def bench(options: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    print(f"load average at start (1/5/15 min): {load()}", flush=True)
    terms = search_terms(options.contacts)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        csv = root / "contacts.csv"
        write_csv(csv, options.contacts)
        started = time.perf_counter()
        build_raw(root / "raw.sqlite3", options.contacts)
        raw_seconds = time.perf_counter() - started
        raw_first = first_raw_page(root / "raw.sqlite3")
        (root / "data").mkdir()
        with (
            owlat_serve(root / "data") as owlat,
            raw_server(root / "raw.sqlite3", root / "raw.json") as raw_url,
        ):
            account, seconds = await set_up_owlat(owlat, root / "data", csv)
            first = await account.call(
                "query",
                "contacts:listFromSession",
                {"paginationOpts": {"numItems": PAGE_SIZE, "cursor": None}},
            )
            owlat_first = sorted(c["email"] for c in first["page"])
            print(
                f"{options.contacts:,} contacts seeded: Owlat {seconds:.1f} s (`owlat contacts "
                f"import` of a CSV), baseline {raw_seconds:.1f} s (executemany); searches: "
                + ", ".join(f"{k} {t!r} ({len(w)} matches)" for k, (t, w) in terms.items()),
                flush=True,
            )
            print(f"load average before the browser: {load()}", flush=True)
            async with chromium() as browser:
                raw = await measure(browser, raw_url, raw_first, terms, options.repeat, owlat=False)
                mine = await measure(
                    browser, owlat["site_url"], owlat_first, terms, options.repeat, owlat=True
                )
    print(f"{options.repeat} runs each (after one warm-up), Chromium headless, same browser")
    report(mine, raw)
    print(f"load average at the end (1/5/15 min): {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", nargs="?", choices=["bench", "raw"], default="bench")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", type=Path)
    parser.add_argument("--info", type=Path)
    options = parser.parse_args()
    if options.kind == "raw":
        _run(uvicorn_config(raw_app(options.database)), options.info, {})
    else:
        asyncio.run(bench(options))


if __name__ == "__main__":
    main()
