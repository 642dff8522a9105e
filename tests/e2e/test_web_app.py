"""The dashboard at / of the site port (runtime/server/web_app.py, wired as `owlat dev/serve`
wire it): routed paths keep their answers, files of the build are served with their caching,
client-side routes get index.html with the client API's URL filled in and security headers,
nothing outside the build folder is ever served, and an unbuilt dashboard says how to build
it. `owlat dev` prints the dashboard's URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from owlat.cli._shared import dashboard
from owlat.config import Settings
from tests.app.conftest import Site, start_site
from tests.e2e.processes import started_with_site

INDEX = (
    '<!doctype html><html><head><meta name="owlat-client-url" content="" />'
    "<title>Owlat</title></head><body><div id=app></div></body></html>"
)


def _build(folder: Path) -> Path:
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX)
    (folder / "assets" / "index-3f2a91.js").write_text("console.log('owlat')")
    (folder / "favicon.svg").write_text("<svg/>")
    (folder / ".source-hash").write_text("not for the public")
    return folder


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    build = _build(tmp_path / "build")
    (tmp_path / "secret.txt").write_text("outside the build")
    (build / "assets" / "escape.txt").symlink_to(tmp_path / "secret.txt")

    def web(client_url: str) -> object:
        return dashboard("owlat.app", Settings(web_dir=build), client_url)

    async with start_site(tmp_path / "data", web=web) as running:  # type: ignore[arg-type]
        yield running


async def test_index_files_and_client_routes(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        for path in ("/", "/contacts", "/contacts/k57a9", "/invite/accept?id=1&token=x"):
            page = await http.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert f'<meta name="owlat-client-url" content="{site.url}" />' in page.text
            assert page.headers["cache-control"] == "no-cache"
            policy = page.headers["content-security-policy"]
            assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
            assert f"connect-src 'self' {site.url} ws://127.0.0.1:" in policy
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "same-origin"
            assert page.headers["x-content-type-options"] == "nosniff"

        script = await http.get("/assets/index-3f2a91.js")
        assert (script.status_code, script.text) == (200, "console.log('owlat')")
        assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "javascript" in script.headers["content-type"]
        head = await http.head("/assets/index-3f2a91.js")
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == script.headers["content-length"]
        icon = await http.get("/favicon.svg")
        assert (icon.status_code, icon.headers["cache-control"]) == (200, "no-cache")


async def test_routes_keep_their_paths_and_unknown_ones_stay_404(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        session = await http.get("/api/auth/get-session")
        assert session.status_code == 200 and session.headers["content-type"].startswith(
            "application/json"
        )
        unsubscribe = await http.get("/unsubscribe")  # the app's own page, not the dashboard
        assert "owlat-client-url" not in unsubscribe.text
        for method, path in (
            ("GET", "/api/nothing"),
            ("GET", "/api"),
            ("GET", "/assets/missing-123.js"),
            ("GET", "/robots.txt"),
            ("POST", "/"),
            ("DELETE", "/contacts"),
        ):
            reply = await http.request(method, path)
            assert (reply.status_code, reply.text) == (
                404,
                f"No HttpAction routed for {path}",
            ), (method, path)
    async with httpx.AsyncClient(base_url=site.url) as http:  # not on the client port
        assert (await http.get("/http/")).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/escape.txt",  # a symlink out of the build
        "/.source-hash",
        "/assets/%5c..%5c..%5csecret.txt",
    ],
)
async def test_nothing_outside_the_build_is_served(site: Site, path: str) -> None:
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        reply = await http.get(path)
    assert "outside the build" not in reply.text
    assert "not for the public" not in reply.text
    assert reply.status_code in (200, 404)  # index.html (a client route) or the router's 404
    if reply.status_code == 200:
        assert "owlat-client-url" in reply.text


async def test_an_unbuilt_dashboard_says_how_to_build_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    def web(client_url: str) -> object:
        return dashboard("owlat.app", Settings(web_dir=empty), client_url)

    async with (
        start_site(tmp_path / "data", web=web) as site,  # type: ignore[arg-type]
        httpx.AsyncClient(base_url=site.site_url) as http,
    ):
        page = await http.get("/contacts")
        assert page.status_code == 503
        assert "dashboard is not built" in page.text and "./dev start" in page.text
        assert (await http.get("/api/auth/get-session")).status_code == 200


def test_only_owlat_app_gets_the_dashboard() -> None:
    assert dashboard("tests.fixtures.app", Settings(), "http://127.0.0.1:3210") is None
    public = Settings(public_url="https://api.example.com/")
    web = dashboard("owlat.app", public, "http://127.0.0.1:3210")
    assert web is not None and web.meta == {"owlat-client-url": "https://api.example.com"}
    assert (
        "connect-src 'self' https://api.example.com wss://api.example.com;"
        in (web.headers["content-security-policy"])
    )


async def test_owlat_dev_serves_and_prints_the_dashboard(tmp_path: Path) -> None:
    build = _build(tmp_path / "build")
    env = {"OWLAT_APP": "owlat.app", "OWLAT_WEB_DIR": str(build)}
    process, url, site_url = await started_with_site("dev", tmp_path / "data", env=env)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert line == f"Dashboard: {site_url}/\n"
        async with httpx.AsyncClient() as http:
            page = await http.get(site_url + "/contacts")
        assert page.status_code == 200
        assert f'content="{url}"' in page.text
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
