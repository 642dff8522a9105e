"""The outbox pages on the site port (/dev/outbox): served by `owlat dev` only, messages
listed newest first and shown with their HTML sandboxed."""

from __future__ import annotations

from pathlib import Path

import httpx

from owlat.app.lib.email_providers.outbox import OutboxProvider
from owlat.app.lib.email_providers.types import EmailMessage
from tests.app.conftest import start_site


async def _write(data_dir: Path, subject: str, key: str) -> str:
    message = EmailMessage(
        to="reader@example.com",
        subject=subject,
        text="Plain <text>",
        html='<p>Hi</p><script>alert("x")</script>',
        idempotency_key=key,
    )
    return (await OutboxProvider(data_dir / "outbox").send(message)).message_id


async def test_the_outbox_is_listed_and_each_message_shown_sandboxed(tmp_path: Path) -> None:
    older = await _write(tmp_path, "First <b>one</b>", "first")
    newer = await _write(tmp_path, "Second", "second")
    async with (
        start_site(tmp_path, development=True) as site,
        httpx.AsyncClient(base_url=site.site_url) as http,
    ):
        listing = await http.get("/dev/outbox")
        assert listing.status_code == 200
        assert "frame-src 'self'" in listing.headers["content-security-policy"]
        assert listing.headers["x-frame-options"] == "DENY"
        body = listing.text
        assert body.index(f"/dev/outbox/{newer}") < body.index(f"/dev/outbox/{older}")
        assert "First &lt;b&gt;one&lt;/b&gt;" in body and "<b>one</b>" not in body

        shown = await http.get(f"/dev/outbox/{older}")
        assert shown.status_code == 200
        assert f'<iframe sandbox src="/dev/outbox/{older}/html">' in shown.text
        assert "Plain &lt;text&gt;" in shown.text
        assert "<th>Message-ID</th>" in shown.text

        framed = await http.get(f"/dev/outbox/{older}/html")
        assert framed.status_code == 200
        assert framed.text.startswith("<p>Hi</p>")
        policy = framed.headers["content-security-policy"]
        assert policy.startswith("sandbox; default-src 'none';")
        assert "script-src" not in policy and "frame-ancestors 'self'" in policy

        for path in (
            "/dev/outbox/nothing-here",
            f"/dev/outbox/{older}/raw",
            "/dev/outbox/..%2F..%2Fsecret_key",
            "/dev/outbox/00000000000000000000-missing",
        ):
            assert (await http.get(path)).status_code == 404, path


async def test_owlat_serve_has_no_outbox_pages(tmp_path: Path) -> None:
    stem = await _write(tmp_path, "Private", "key")
    async with start_site(tmp_path) as site, httpx.AsyncClient(base_url=site.site_url) as http:
        for path in ("/dev/outbox", f"/dev/outbox/{stem}", f"/dev/outbox/{stem}/html"):
            answer = await http.get(path)
            assert answer.status_code == 404 and "Private" not in answer.text
