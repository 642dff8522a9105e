"""Open and click tracking through the real site port (reference §8.3, §4, §15): a tracked
transactional mail goes to the outbox, its HTML is parsed, its pixel and links are
fetched; the send, the contact and its timeline follow. Signed links refuse tampering;
proxies' opens are flagged; the per-address limit serves without recording; concurrent
events share commits, each answered once committed."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from owlat.app import tracking
from owlat.app.lib import instance
from owlat.app.lib.address_limits import AddressLimiter
from owlat.app.lib.tracking import links
from owlat.app.lib.tracking.prefetch import prefetcher
from owlat.app.tracking import GIF
from owlat.runtime import ActionCtx, Auth
from owlat.runtime.database.api import DatabaseWriter
from owlat.runtime.database.commits import Commit
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, Site, start_site
from tests.app.mail_setup import settled
from tests.app.rendering.samples import text_block
from tests.app.test_campaign_feedback import _campaign, _sends, team
from tests.app.test_rest_api import api_key, client, organization

BODY = [
    text_block(
        '<p>Hi <a href="https://shop.example/order?id=7&amp;x=1">your order</a>, '
        '<a href="mailto:help@shop.example">mail us</a></p>',
        "t1",
    )
]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
__all__ = ["team"]  # fixtures


@pytest.fixture(params=["lean", "http-actions"])
async def site(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> AsyncIterator[Site]:
    """On both engines, with the tracking paths answered by the lean route before the
    HTTP-action stack (app/site_paths.py, as `owlat serve`) and by the HTTP actions."""
    lean = request.param == "lean"
    async with start_site(tmp_path, database_url=database_url, lean=lean) as running:
        yield running


@dataclasses.dataclass
class Tracked:
    owner: Caller
    send_id: str
    contact_id: str
    html: str
    http: httpx.AsyncClient


async def _send(site: Site, owner: Caller, email: str) -> tuple[dict[str, Any], str]:
    async with client(site, await api_key(owner)) as api:
        response = await api.post("/transactional", json={"slug": "hello", "email": email})
    assert response.status_code == 202, response.text
    answer = response.json()["data"]
    await settled(owner, answer["transactionalEmailId"])
    (mail,) = [m for m in site.outbox() if m["To"] == email]
    return answer, mail.get_body(("html",)).get_content()


async def _organization(site: Site, slug: str, *, track: bool) -> Caller:
    owner, _ = await organization(site, slug)
    await owner.mutation("organizationSettings:update", {"trackTransactional": track})
    email_id = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Hello", "slug": "hello", "subject": "Hello", "content": json.dumps(BODY)},
    )
    await owner.mutation("transactionalEmails:publish", {"transactionalEmailId": email_id})
    return owner


@pytest.fixture
async def tracked(site: Site) -> AsyncIterator[Tracked]:
    owner = await _organization(site, "acme", track=True)
    answer, html = await _send(site, owner, "ada@example.com")
    async with httpx.AsyncClient(base_url=site.site_url, headers={"user-agent": BROWSER}) as http:
        yield Tracked(owner, answer["transactionalEmailId"], answer["contactId"], html, http)


def _hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def _pixel(html: str) -> str:
    (src,) = re.findall(r'<img src="([^"]+/t/o/[^"]+)"', html)
    return src


async def _send_row(tracked: Tracked) -> dict[str, Any]:
    row: dict[str, Any] = await tracked.owner.query(
        "transactionalSends:get", {"sendId": tracked.send_id}
    )
    return row


async def _activities(site: Site, contact_id: str) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[dict[str, Any]]:
        rows = await ctx.db.query("contactActivities").collect()
        return [dict(r) for r in rows if r["contactId"] == contact_id]

    return [a for a in await in_query(site.application, read) if a["activityType"] != "created"]


async def test_the_pixel_records_an_open_once_per_reader(site: Site, tracked: Tracked) -> None:
    pixel = _pixel(tracked.html)
    assert pixel == f"{site.site_url}/t/o/{tracked.send_id}"
    response = await tracked.http.get(pixel)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert response.headers["cache-control"].startswith("no-store")
    row = await _send_row(tracked)
    assert (row["status"], row["openCount"]) == ("opened", 1)
    assert row["openedAt"] == row["humanOpenedAt"] and row["deliveredAt"] is not None
    await tracked.http.get(pixel)
    assert (await _send_row(tracked))["openCount"] == 2
    contact = await tracked.owner.query("contacts:get", {"contactId": tracked.contact_id})
    assert contact["hasOpened"] is True and not contact.get("hasClicked")
    (opened,) = await _activities(site, tracked.contact_id)
    assert opened["activityType"] == "email_opened"
    assert opened["metadata"]["sendId"] == tracked.send_id


async def test_a_proxy_prefetch_is_recorded_but_flagged(site: Site, tracked: Tracked) -> None:
    pixel = _pixel(tracked.html)
    await tracked.http.get(pixel, headers={"user-agent": "Mozilla/5.0"})  # Apple MPP
    row = await _send_row(tracked)
    assert (row["status"], row["openCount"], row["proxyOpenCount"]) == ("opened", 1, 1)
    assert "humanOpenedAt" not in row
    contact = await tracked.owner.query("contacts:get", {"contactId": tracked.contact_id})
    assert not contact.get("hasOpened")
    (flagged,) = await _activities(site, tracked.contact_id)
    assert flagged["metadata"]["prefetched"] == "apple"
    stats = await tracked.owner.query("tracking:stats", {})
    assert (stats["opened"], stats["openedWithoutProxies"], stats["proxyOpens"]) == (1, 0, 1)
    gmail = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    await tracked.http.get(pixel, headers={"user-agent": gmail})
    await tracked.http.get(pixel)  # the reader
    stats = await tracked.owner.query("tracking:stats", {})
    assert (stats["opened"], stats["openedWithoutProxies"], stats["opens"]) == (1, 1, 3)
    assert stats["proxyOpens"] == 2


async def test_links_redirect_through_signed_click_links(site: Site, tracked: Tracked) -> None:
    order, mailto = _hrefs(tracked.html)
    assert mailto == "mailto:help@shop.example"  # not tracked
    assert order.startswith(f"{site.site_url}/t/c/{tracked.send_id}/")
    response = await tracked.http.get(order)
    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example/order?id=7&x=1"
    row = await _send_row(tracked)
    assert (row["status"], row["clickCount"]) == ("clicked", 1)
    assert [link["url"] for link in row["clickedLinks"]] == ["https://shop.example/order?id=7&x=1"]
    assert row["deliveredAt"] is not None
    contact = await tracked.owner.query("contacts:get", {"contactId": tracked.contact_id})
    assert contact["hasClicked"] is True
    (clicked,) = await _activities(site, tracked.contact_id)
    assert clicked["activityType"] == "email_clicked"
    assert clicked["metadata"]["linkUrl"] == "https://shop.example/order?id=7&x=1"
    stats = await tracked.owner.query("tracking:stats", {})
    assert (stats["sent"], stats["delivered"], stats["clicked"], stats["clicks"]) == (1, 1, 1, 1)
    # segment conditions on email activity now match (upstream never set the flags)
    for field in ("clicked", "opened"):
        condition = {"kind": "email_activity", "field": field, "operator": "is_true"}
        filters = {"logic": "AND", "conditions": [condition]}
        count = await tracked.owner.query("segments:countFilters", {"filters": filters})
        assert count == (1 if field == "clicked" else 0), field


async def test_a_repeat_open_or_click_counts_without_moving_the_sends_update_time(
    site: Site, tracked: Tracked
) -> None:
    """A step of the send's lifecycle (a status, a first open or click) moves `updatedAt`,
    and with it the send's entries in the indexes by status and update time; a repeat open
    or click only counts (lib/sending/feedback.py), so its write changes no index entry."""
    pixel, (order, _) = _pixel(tracked.html), _hrefs(tracked.html)
    apple = {"user-agent": "Mozilla/5.0"}  # Apple's prefetch

    async def after(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """The send once `url` is fetched, at least a millisecond after the last write."""
        await asyncio.sleep(0.002)
        await tracked.http.get(url, headers=headers)
        row = await in_query(site.application, lambda ctx: ctx.db.get(tracked.send_id))
        return dict(row)

    prefetched = await after(pixel, apple)
    assert prefetched["updatedAt"] == prefetched["openedAt"]
    assert (await after(pixel, apple))["updatedAt"] == prefetched["updatedAt"]
    opened = await after(pixel)  # the reader's first open: a lifecycle step
    assert opened["updatedAt"] == opened["humanOpenedAt"] > prefetched["updatedAt"]
    clicked = await after(order)  # the first click: status `clicked`
    assert clicked["updatedAt"] == clicked["clickedAt"] > opened["updatedAt"]
    await after(order)
    again = await after(pixel)
    assert (again["openCount"], again["proxyOpenCount"], again["clickCount"]) == (4, 2, 2)
    assert len(again["clickedLinks"]) == 2
    assert (again["status"], again["updatedAt"]) == ("clicked", clicked["updatedAt"])


async def test_tampered_and_foreign_links_are_refused(site: Site, tracked: Tracked) -> None:
    (order, _) = _hrefs(tracked.html)
    prefix, send_id, target, signature = order.rsplit("/", 3)
    evil = links._b64(b"https://evil.example/")
    other_send = send_id[:-1] + ("a" if send_id[-1] != "a" else "b")
    for url in (
        f"{prefix}/{send_id}/{evil}/{signature}",  # another target
        f"{prefix}/{other_send}/{target}/{signature}",  # another send
        f"{prefix}/{send_id}/{target}/{signature[:-2]}xx",  # another signature
        f"{prefix}/{send_id}/{evil}/{links.signature(send_id, evil)[::-1]}",  # forged
    ):
        response = await tracked.http.get(url)
        assert response.status_code == 400, url
        assert "location" not in response.headers
    for url in (f"{prefix}/{send_id}/{target}", f"{prefix}/{send_id}/{target}/{signature}/x"):
        assert (await tracked.http.get(url)).status_code == 404
    row = await _send_row(tracked)
    assert row["status"] == "sent" and "clickCount" not in row


async def test_past_the_address_limit_links_work_but_nothing_is_recorded(
    site: Site, tracked: Tracked, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = dataclasses.replace(instance.current(), tracking_requests=AddressLimiter(2))
    monkeypatch.setattr(instance, "_current", limited)
    pixel, (order, _) = _pixel(tracked.html), _hrefs(tracked.html)
    for _ in range(2):
        assert (await tracked.http.get(pixel)).status_code == 200
    assert (await tracked.http.get(pixel)).status_code == 200
    response = await tracked.http.get(order)
    assert response.status_code == 302
    row = await _send_row(tracked)
    assert row["openCount"] == 2 and "clickCount" not in row


async def test_links_use_the_verified_tracking_domain(site: Site) -> None:
    owner = await _organization(site, "brand", track=True)
    await owner.mutation("trackingDomains:add", {"domain": "pending.brand-mail.com"})
    await owner.mutation("trackingDomains:add", {"domain": "t.brand-mail.com"})

    async def verify_one(ctx: Any) -> None:
        for row in await ctx.db.query("trackingDomains").collect():
            if row["domain"] == "t.brand-mail.com":
                await ctx.db.patch(row["_id"], {"status": "verified"})

    await in_mutation(site.application, verify_one)
    answer, html = await _send(site, owner, "cy@example.com")
    scheme = site.site_url.split("://")[0]
    assert _pixel(html) == f"{scheme}://t.brand-mail.com/t/o/{answer['transactionalEmailId']}"
    assert _hrefs(html)[0].startswith(f"{scheme}://t.brand-mail.com/t/c/")


async def test_transactional_sends_are_not_tracked_by_default(site: Site) -> None:
    owner = await _organization(site, "plain", track=False)
    _, html = await _send(site, owner, "bob@example.com")
    assert "/t/o/" not in html and "/t/c/" not in html
    assert "https://shop.example/order?id=7&amp;x=1" in html


async def test_an_unknown_or_malformed_send_id_still_gets_the_pixel(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        for path in ("/t/o/nope", "/t/o/", "/t/o/a/b"):
            response = await http.get(path)
            assert response.status_code == 200 and response.content.startswith(b"GIF")


# -- the rewriting rule, without a server ------------------------------------------------------


def test_rewriting_skips_upstreams_exceptions_and_own_subscription_links(
    tmp_path: Any,
) -> None:
    instance.configure(tmp_path, "https://owlat.example")
    base = "https://t.brand-mail.com"
    html = (
        "<html><body>"
        '<a href="https://a.example/x">a</a>'
        "<a href='https://b.example/y?q=1&amp;r=2'>b</a>"
        '<a href="mailto:x@y.z">m</a><a href="tel:+1555">t</a><a href="sms:+1555">s</a>'
        '<a href="#top">anchor</a><a href="javascript:alert(1)">js</a>'
        '<a data-no-track href="https://c.example/">c</a>'
        '<a href="https://owlat.example/unsubscribe?token=x">u</a>'
        '<a href="https://owlat.example/preferences?token=x">p</a>'
        '<a href="https://t.brand-mail.com/t/c/already/x/y">done</a>'
        '<a href="https://user:pw@d.example/">userinfo</a>'
        '<a name="no-href">n</a>'
        '<a data-href="https://e.example/" href="https://f.example/">f</a>'
        '<a href="https://例え.jp/パス">idn</a>'
        "</body></html>"
    )
    out = links.tracked_html(html, "send1", base)
    hrefs = re.findall(r"""href=["']([^"']+)["']""", out)
    assert hrefs[0].startswith(f"{base}/t/c/send1/")
    assert hrefs[1].startswith(f"{base}/t/c/send1/")
    _, send_id, target, sig = hrefs[1].rsplit("/", 3)
    assert links.verified_target(send_id, target, sig) == "https://b.example/y?q=1&r=2"
    assert hrefs[2:] == [
        "mailto:x@y.z",
        "tel:+1555",
        "sms:+1555",
        "#top",
        "javascript:alert(1)",
        "https://c.example/",
        "https://owlat.example/unsubscribe?token=x",
        "https://owlat.example/preferences?token=x",
        "https://t.brand-mail.com/t/c/already/x/y",
        "https://user:pw@d.example/",
        "https://e.example/",
        hrefs[-2],
        "https://例え.jp/パス",
    ]
    assert hrefs[-2].startswith(f"{base}/t/c/send1/")  # the href, not data-href
    pixel = f'<img src="{base}/t/o/send1" width="1" height="1" alt="" '
    assert out.endswith(
        pixel + 'style="display:block;width:1px;height:1px;border:0" /></body></html>'
    )
    assert links.base_url_for("t.brand-mail.com") == "https://t.brand-mail.com"


def test_prefetchers_by_user_agent_and_address() -> None:
    assert prefetcher("Mozilla/5.0", "203.0.113.9") == "apple"
    assert prefetcher(BROWSER, "17.58.1.2") == "apple"
    assert prefetcher("Mozilla/5.0 (via ggpht.com GoogleImageProxy)", "1.2.3.4") == "gmail"
    assert prefetcher(BROWSER, "66.249.84.10") == "gmail"
    assert prefetcher("YahooMailProxy; https://help.yahoo.com", "1.2.3.4") == "yahoo"
    assert prefetcher(BROWSER, "203.0.113.9") is None
    assert prefetcher(BROWSER, "unknown") is None
    # the ranges' edges, and what is no IPv4 dotted quad (not in any range)
    edges = ("17.255.255.255", "74.125.255.1", "66.102.15.255")
    assert [prefetcher(BROWSER, a) for a in edges] == ["apple", "gmail", "gmail"]
    for outside in ("16.255.255.255", "18.0.0.0", "66.102.16.0", "74.126.0.1", "017.1.2.3",
                    "::ffff:17.1.2.3", "17.1.2.3\x00", ""):  # fmt: skip
        assert prefetcher(BROWSER, outside) is None, outside


def test_each_click_link_answers_its_own_signed_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`click_answer` as the lean route and the HTTP actions give it: the target and the
    event of the link followed, whatever links were followed before (the destination
    checks are remembered per URL, never per link); a signature as links were always
    signed (HMAC-SHA256 of `sendId.target`); `make_answer`'s headers."""
    secret = b"k" * 32
    monkeypatch.setattr(
        instance, "_current", instance.Instance(tmp_path, "http://s", "http://s", secret)
    )
    key = hmac.new(secret, b"owlat click tracking", hashlib.sha256).digest()
    shop, blog = "https://shop.example/a?x=1", "https://blog.example/b"
    for _ in range(2):  # the second time from what was remembered
        for send_id, target in (("send1", shop), ("send1", blog), ("send2", shop)):
            encoded = links._b64(target.encode())
            expected = hmac.new(key, f"{send_id}.{encoded}".encode(), hashlib.sha256).digest()
            assert links.signature(send_id, encoded) == links._b64(expected)
            answer = tracking.click_answer(links.click_url("", send_id, target), "192.0.2.1")
            location = (b"location", target.encode())
            assert answer == dataclasses.replace(
                tracking.make_answer(302, b"", location),
                event={"sendId": send_id, "kind": "clicked", "url": target},
            )
        # signed, but no destination to redirect to; and a signature of another send
        for target in ("javascript:alert(1)", "https://user@shop.example/", "https://x/\\y"):
            encoded = links._b64(target.encode())
            path = f"/t/c/send1/{encoded}/{links.signature('send1', encoded)}"
            assert tracking.click_answer(path, "192.0.2.1") is tracking.INVALID_LINK, target
        encoded = links._b64(shop.encode())
        path = f"/t/c/send1/{encoded}/{links.signature('send2', encoded)}"
        assert tracking.click_answer(path, "192.0.2.1") is tracking.INVALID_LINK
    over = dataclasses.replace(instance.current(), tracking_requests=AddressLimiter(0))
    monkeypatch.setattr(instance, "_current", over)
    answer = tracking.click_answer(links.click_url("", "send1", shop), "192.0.2.1")
    assert answer == tracking.make_answer(302, b"", (b"location", shop.encode()))


async def test_concurrent_events_are_committed_together_before_their_answers(
    site: Site, tracked: Tracked, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = dataclasses.replace(instance.current(), tracking_requests=AddressLimiter(1000))
    monkeypatch.setattr(instance, "_current", limited)
    pixel, (order, _) = _pixel(tracked.html), _hrefs(tracked.html)
    committed: list[int] = []  # opens + clicks of the send after each commit that wrote it

    def on_commit(commit: Commit) -> None:
        for change in commit.write_set.documents:
            if change.table == "transactionalSends" and change.new is not None:
                committed.append(
                    int(change.new.get("openCount") or 0) + int(change.new.get("clickCount") or 0)
                )

    site.application.on_commit(on_commit)
    answered: list[int] = []  # events committed when each answer arrived

    async def fetch(url: str) -> None:
        response = await tracked.http.get(url)
        assert response.status_code in (200, 302)
        answered.append(max(committed, default=0))

    await asyncio.gather(*(fetch(pixel if n % 2 else order) for n in range(60)))
    row = await _send_row(tracked)
    assert (row["openCount"], row["clickCount"]) == (30, 30)
    # durable before answered: the k-th answer came after at least k events were committed
    assert all(seen >= k for k, seen in enumerate(answered, start=1)), answered
    assert len(committed) < 60, "concurrent events share commits"


async def test_one_batch_moves_each_campaigns_counters_by_the_sum_of_its_events(
    site: Site, team: tuple[Caller, str]
) -> None:
    """The events of one `record` batch fold their campaign counters (lib/tracking/counts.py)
    per campaign and A/B variant: the stats equal event-by-event counting."""
    spring, _ = await _campaign(site, team, 3)
    autumn, _ = await _campaign(site, await organization(site, "globex"), 2)
    a0, a1, a2 = [row for _, row in sorted((await _sends(site, spring)).items())]
    b0, b1 = [row for _, row in sorted((await _sends(site, autumn)).items())]

    async def split(ctx: Any) -> None:  # spring as an A/B test: a0 and a2 got B, a1 A
        for row, variant in ((a0, "B"), (a1, "A"), (a2, "B")):
            await ctx.db.patch(row["_id"], {"abVariant": variant})

    await in_mutation(site.application, split)
    events = [
        {"sendId": a0["_id"], "kind": "opened"},
        {"sendId": b0["_id"], "kind": "opened"},
        {"sendId": a0["_id"], "kind": "opened"},  # the same send again: not counted again
        {"sendId": a1["_id"], "kind": "opened", "prefetcher": "gmail"},
        {"sendId": a0["_id"], "kind": "clicked", "url": "https://shop.example/a"},
        {"sendId": "nope", "kind": "opened"},
        {"sendId": a2["_id"], "kind": "clicked", "url": "https://shop.example/b"},
        {"sendId": b1["_id"], "kind": "clicked", "url": "https://shop.example/c"},
        {"sendId": a2["_id"], "kind": "clicked", "url": "https://shop.example/b"},
    ]
    await site.application.run_mutation("tracking:record", {"events": events}, internal=True)

    async def stats(ctx: Any) -> dict[str, dict[str, Any]]:
        rows = await ctx.db.query("campaignStats").collect()
        return {row["campaignId"]: dict(row) for row in rows}

    found = await in_query(site.application, stats)
    counters = ("delivered", "opened", "humanOpened", "clicked")
    assert {k: found[spring].get(k) for k in counters} == {
        "delivered": 3, "opened": 2, "humanOpened": 1, "clicked": 2,
    }  # fmt: skip
    assert found[spring]["variants"] == {
        "A": {"delivered": 1, "opened": 1},
        "B": {"delivered": 2, "opened": 1, "humanOpened": 1, "clicked": 2},
    }
    assert {k: found[autumn].get(k) for k in counters} == {
        "delivered": 2, "opened": 1, "humanOpened": 1, "clicked": 1,
    }  # fmt: skip
    assert "variants" not in found[autumn]
    rows = await _sends(site, spring)
    first = rows[a0["email"]]
    assert (first["status"], first["openCount"], first["clickCount"]) == ("clicked", 2, 1)
    assert (rows[a1["email"]]["proxyOpenCount"], rows[a2["email"]]["clickCount"]) == (1, 2)


async def test_head_request_ids_and_the_limit_per_forwarded_client(
    site: Site, tracked: Tracked, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A HEAD of the pixel counts as its GET, without the body; answers carry a request id;
    the limit and the proxy ranges apply to the client a trusted proxy forwarded for."""
    limited = dataclasses.replace(instance.current(), tracking_requests=AddressLimiter(2))
    monkeypatch.setattr(instance, "_current", limited)
    pixel, (order, _) = _pixel(tracked.html), _hrefs(tracked.html)
    head = await tracked.http.head(pixel, headers={"x-forwarded-for": "198.51.100.7"})
    assert (head.status_code, head.headers["content-type"], head.content) == (200, "image/gif", b"")
    assert head.headers["content-length"] == str(len(GIF)) and head.headers["x-request-id"]
    given = {"x-forwarded-for": "198.51.100.7", "x-request-id": "pixel-1"}
    opened = await tracked.http.get(pixel, headers=given)
    assert (opened.content, opened.headers["x-request-id"]) == (GIF, "pixel-1")
    for _ in range(2):  # 198.51.100.7 is over its limit: served, not recorded
        assert (await tracked.http.get(pixel, headers=given)).status_code == 200
        clicked = await tracked.http.get(order, headers=given)
        assert clicked.headers["location"] == "https://shop.example/order?id=7&x=1"
    apple = {"x-forwarded-for": "17.58.1.2"}  # Apple's network, another client
    assert (await tracked.http.get(pixel, headers=apple)).status_code == 200
    clicked = await tracked.http.get(order, headers={"x-forwarded-for": "198.51.100.8"})
    assert clicked.status_code == 302 and clicked.headers["x-request-id"]
    row = await _send_row(tracked)
    assert (row["openCount"], row["proxyOpenCount"], row["clickCount"]) == (3, 1, 1)


async def test_events_that_arrive_together_share_one_mutation(site: Site, tracked: Tracked) -> None:
    """The committer takes its batch when it starts, after every request that arrived with
    the first (`tracking._Batches`): one commit for the burst, not the first event alone."""
    commits: list[Commit] = []

    def on_commit(commit: Commit) -> None:
        if any(change.table == "transactionalSends" for change in commit.write_set.documents):
            commits.append(commit)

    site.application.on_commit(on_commit)
    ctx = ActionCtx(site.application, Auth(None))
    event = {"sendId": tracked.send_id, "kind": "opened"}
    await asyncio.gather(*(tracking._record(ctx, dict(event)) for _ in range(20)))
    assert len(commits) == 1
    assert (await _send_row(tracked))["openCount"] == 20


def _settled(document: dict[str, Any]) -> dict[str, Any]:
    """`document` without what differs between two organizations' alike sends, contacts
    or activities recorded by different mutations (ids, addresses, times)."""
    kept = {}
    for name, value in document.items():
        if name in ("_id", "_creationTime", "email") or name.endswith(("Id", "Ids")):
            continue
        if name.endswith("At") or name == "occurredAt":
            value = "a time"
        elif name == "clickedLinks":
            value = [link["url"] for link in value]
        elif name == "metadata":
            value = _settled(value)
        kept[name] = value
    return kept


async def test_a_batch_writes_each_send_and_contact_once_as_event_by_event_would(
    site: Site, team: tuple[Caller, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One `record` batch patches each send and contact it touches once
    (lib/pending_writes.py), and leaves the sends, the contacts, their timelines and the
    campaign's counters as one mutation per event does."""
    batched, batched_contacts = await _campaign(site, team, 2)
    single, single_contacts = await _campaign(site, await organization(site, "globex"), 2)

    def events(campaign: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        first, second = (row["_id"] for _, row in sorted(campaign.items()))
        return [
            {"sendId": first, "kind": "opened", "prefetcher": "gmail"},
            {"sendId": first, "kind": "opened"},
            {"sendId": first, "kind": "clicked", "url": "https://shop.example/a"},
            {"sendId": first, "kind": "opened"},
            {"sendId": first, "kind": "clicked", "url": "https://shop.example/a"},
            {"sendId": first, "kind": "clicked", "url": "https://shop.example/b"},
            {"sendId": second, "kind": "clicked", "url": "https://shop.example/a"},
            {"sendId": second, "kind": "opened", "prefetcher": "apple"},
        ]

    for event in events(await _sends(site, single)):
        await site.application.run_mutation("tracking:record", {"events": [event]}, internal=True)
    patched: list[str] = []
    patch = DatabaseWriter.patch

    async def counted(db: DatabaseWriter, *args: Any) -> None:
        patched.append(args[0])
        await patch(db, *args)

    monkeypatch.setattr(DatabaseWriter, "patch", counted)
    batch = events(await _sends(site, batched))
    await site.application.run_mutation("tracking:record", {"events": batch}, internal=True)
    monkeypatch.undo()

    touched = {event["sendId"] for event in batch} | set(batched_contacts)
    assert sorted(p for p in patched if p in touched) == sorted(touched)  # once each

    async def state(campaign_id: str, contact_ids: list[str]) -> dict[str, Any]:
        async def read(ctx: Any) -> dict[str, Any]:
            stats = await ctx.db.query("campaignStats").collect()
            activities = await ctx.db.query("contactActivities").collect()
            contacts = [_settled(dict(await ctx.db.get(c))) for c in contact_ids]
            timeline = [
                _settled(dict(a)) for a in activities
                if a["contactId"] in contact_ids and a["activityType"] != "created"
            ]  # fmt: skip
            (counters,) = [_settled(dict(s)) for s in stats if s["campaignId"] == campaign_id]
            return {"contacts": contacts, "timeline": timeline, "counters": counters}

        found = dict(await in_query(site.application, read))
        sends = sorted((await _sends(site, campaign_id)).items())
        found["sends"] = [_settled(row) for _, row in sends]
        return found

    after_batch = await state(batched, batched_contacts)
    assert after_batch == await state(single, single_contacts)
    first, _ = after_batch["sends"]
    assert (first["openCount"], first["proxyOpenCount"], first["clickCount"]) == (3, 1, 3)
    assert first["clickedLinks"] == ["https://shop.example/a"] * 2 + ["https://shop.example/b"]
    assert [c.get("hasOpened") for c in after_batch["contacts"]] == [True, None]
    assert after_batch["counters"]["humanOpened"] == 1
