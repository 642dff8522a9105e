"""The public subscription endpoints and pages on the real server (reference §4, §4.1):
DOI confirmation from the mailed link, one-click unsubscribe, preferences, tokens,
escaping, rate limits."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from owlat.app.lib import instance
from owlat.app.lib.address_limits import AddressLimiter
from owlat.app.lib.session_organization import now_ms
from owlat.app.lib.subscription_tokens import (
    TOKEN_TTL_MS,
    TokenError,
    list_unsubscribe_headers,
    make_token,
    preferences_link,
    unsubscribe_link,
    verify_token,
)
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, Site, mail_text, signed_in, with_organization


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    """These tests run on SQLite and PostgreSQL."""
    return site_on_both_engines


@contextlib.asynccontextmanager
async def _client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=site.site_url) as client:
        yield client


async def _owner(site: Site, slug: str = "acme") -> Caller:
    owner = await signed_in(site.application, f"owner@{slug}.example")
    await with_organization(owner, slug)
    return owner


async def _list(owner: Caller, name: str, doi: bool = False) -> str:
    return str(
        await owner.mutation("mailingLists:create", {"name": name, "requireDoubleOptIn": doi})
    )


async def _contact(owner: Caller, email: str, **fields: Any) -> str:
    return str(await owner.mutation("contacts:createFromSession", {"email": email, **fields}))


async def _member_lists(site: Site, contact_id: str) -> dict[str, str]:
    async def read(ctx: Any) -> dict[str, str]:
        rows = (
            await ctx.db.query("mailingListMembers")
            .with_index("by_contact", lambda q: q.eq("contactId", contact_id))
            .collect()
        )
        return {row["listId"]: row["status"] for row in rows}

    return dict(await in_query(site.application, read))


async def _document(site: Site, document_id: str) -> dict[str, Any]:
    async def read(ctx: Any) -> Any:
        return await ctx.db.get(document_id)

    return dict(await in_query(site.application, read))


async def _doi_link(site: Site, to: str) -> str:
    for _ in range(300):
        for mail in site.outbox():
            if mail["To"] == to:
                assert mail["Subject"] == "Confirm your subscription to Acme"
                match = re.search(r"(http\S+/confirm\?token=\S+)", mail_text(mail))
                assert match, mail_text(mail)
                return match.group(1)
        await asyncio.sleep(0.01)
    raise AssertionError(f"no confirmation mail to {to}")


# -- double opt-in -----------------------------------------------------------------------------


async def test_mailed_doi_link_confirms_through_http(site: Site) -> None:
    owner = await _owner(site)
    news = await _list(owner, "News", doi=True)
    ada = await _contact(owner, "ada@example.com", firstName="Ada")
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": ada})
    link = await _doi_link(site, "ada@example.com")
    assert link.startswith(site.site_url + "/confirm?token=")
    token = link.split("token=", 1)[1]
    async with _client(site) as http:
        landing = await http.get(link)  # a prefetching scanner changes nothing
        assert landing.status_code == 200 and 'method="post"' in landing.text
        assert "ada@example.com" in landing.text and "Acme" in landing.text
        assert (await _document(site, ada))["doiStatus"] == "pending"
        verify = await http.get("/confirm/doi/verify", params={"token": token})
        assert verify.json() == {
            "ok": True,
            "data": {
                "contactEmail": "ada@example.com",
                "doiStatus": "pending",
                "contactFirstName": "Ada",
                "teamName": "Acme",
            },
        }
        assert verify.headers["access-control-allow-origin"] == "*"
        confirmed = await http.post("/confirm/doi", params={"token": token})
        assert confirmed.status_code == 200
        assert confirmed.json()["data"] == {
            "alreadyConfirmed": False,
            "contactEmail": "ada@example.com",
            "message": "Your subscription has been confirmed!",
        }
        again = await http.post("/confirm/doi", params={"token": token})
        assert again.json()["data"]["alreadyConfirmed"] is True
        page = await http.get(link)
        assert "already confirmed" in page.text
    assert await _member_lists(site, ada) == {news: "subscribed"}
    found = await owner.query("mailingLists:get", {"listId": news})
    assert (found["memberCount"], found["pendingCount"]) == (1, 0)


async def test_confirm_page_button_and_bad_doi_tokens(site: Site) -> None:
    owner = await _owner(site)
    news = await _list(owner, "News", doi=True)
    bob = await _contact(owner, "bob@example.com")
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": bob})
    token = (await _doi_link(site, "bob@example.com")).split("token=", 1)[1]
    async with _client(site) as http:
        unknown = await http.get("/confirm/doi/verify", params={"token": "x" * 32})
        assert unknown.status_code == 404
        assert unknown.json() == {
            "error": {
                "category": "not_found",
                "message": "Invalid or expired confirmation token",
                "data": {"reason": "invalid_token"},
            }
        }
        failed = await http.post("/confirm/doi", params={"token": "x" * 32})
        assert failed.status_code == 400
        assert failed.json()["error"]["data"] == {"reason": "confirmation_failed"}
        missing = await http.post("/confirm/doi")
        assert missing.status_code == 400
        assert missing.json()["error"]["message"] == "Missing token"
        assert (await http.get("/confirm/doi", params={"token": token})).status_code == 405
        preflight = await http.options("/confirm/doi")
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-methods"] == "POST, OPTIONS"
        assert preflight.headers["access-control-max-age"] == "86400"

        async def expire(ctx: Any) -> None:
            await ctx.db.patch(bob, {"doiTokenExpiresAt": now_ms() - 1})

        await in_mutation(site.application, expire)
        expired = await http.post("/confirm/doi", params={"token": token})
        assert expired.json()["error"]["message"] == "This confirmation link has expired"
        assert (await http.post("/confirm", data={"token": token})).status_code == 400

        async def revive(ctx: Any) -> None:
            await ctx.db.patch(bob, {"doiTokenExpiresAt": now_ms() + 60_000})

        await in_mutation(site.application, revive)
        done = await http.post("/confirm", data={"token": token})
        assert done.status_code == 200 and "Your subscription has been confirmed!" in done.text
    assert await _member_lists(site, bob) == {news: "subscribed"}


# -- one-click unsubscribe and the unsubscribe page --------------------------------------------


async def test_one_click_post_unsubscribes_and_get_does_not(site: Site) -> None:
    owner = await _owner(site)
    lists = [await _list(owner, "News"), await _list(owner, "Offers")]
    ada = await _contact(owner, "ada@example.com")
    for list_id in lists:
        await owner.mutation("mailingLists:addContact", {"listId": list_id, "contactId": ada})
    headers = list_unsubscribe_headers(ada, site.site_url)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = headers["List-Unsubscribe"].strip("<>")
    assert url.startswith(site.site_url + "/unsub/")
    token = make_token("unsubscribe", ada)
    async with _client(site) as http:
        assert (await http.get(url)).status_code == 405
        page = await http.get("/unsubscribe", params={"token": token})
        assert page.status_code == 200 and 'method="post"' in page.text
        verify = await http.get(f"/unsub/verify/{quote(token, safe='')}")
        assert verify.json() == {
            "ok": True,
            "data": {"email": "ada@example.com", "subscribed": True, "organizationName": "Acme"},
        }
        assert set(await _member_lists(site, ada)) == set(lists)  # GETs changed nothing
        assert "unsubscribedAt" not in await _document(site, ada)

        done = await http.post(url, content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200
        assert "access-control-allow-origin" not in done.headers
        assert done.json() == {
            "ok": True,
            "data": {
                "message": "You have been successfully unsubscribed from 2 topic(s)",
                "listsRemoved": 2,
            },
        }
        assert await _member_lists(site, ada) == {}
        assert (await _document(site, ada))["unsubscribedAt"] > 0
        again = await http.post(url)
        assert again.json()["data"] == {
            "message": "You were already unsubscribed from all topics",
            "listsRemoved": 0,
        }
        # the page's button does the same
        bob = await _contact(owner, "bob@example.com")
        await owner.mutation("mailingLists:addContact", {"listId": lists[0], "contactId": bob})
        bob_token = make_token("unsubscribe", bob)
        form = await http.post("/unsubscribe", data={"token": bob_token})
        assert form.status_code == 200 and "You are unsubscribed" in form.text
        assert await _member_lists(site, bob) == {}
    for list_id in lists:
        found = await owner.query("mailingLists:get", {"listId": list_id})
        assert (found["memberCount"], found["pendingCount"]) == (0, 0)


async def test_bad_tokens_and_token_kinds(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = await _owner(site)
    news = await _list(owner, "News")
    ada = await _contact(owner, "ada@example.com")
    bob = await _contact(owner, "bob@example.com")
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": ada})
    unsubscribe, preferences = make_token("unsubscribe", ada), make_token("preferences", ada)
    tampered = bob + unsubscribe[len(ada) :]  # ada's signature on bob's id
    old = make_token("unsubscribe", ada, issued_at=int(now_ms() - TOKEN_TTL_MS - 1000))
    cases = {
        preferences: "invalid_signature",
        tampered: "invalid_signature",
        old: "expired",
        "nonsense": "invalid_format",
        f"{ada}::sig": "missing_parts",
        f"{ada}:soon:sig": "parse_error",
    }
    async with _client(site) as http:
        for token, reason in cases.items():
            answer = await http.post(f"/unsub/{quote(token, safe='')}")
            assert answer.status_code == 400, token
            assert answer.json() == {
                "error": {
                    "category": "invalid_input",
                    "message": "Invalid or expired unsubscribe link",
                    "data": {"reason": reason},
                }
            }
            outcome = await http.get(f"/unsub/verify/{quote(token, safe='')}")
            assert outcome.status_code == 200
            assert outcome.json() == {"ok": False, "reason": reason}
        # an unsubscribe token is not a preferences token either
        refused = await http.get(f"/prefs/verify/{quote(unsubscribe, safe='')}")
        assert refused.json() == {"ok": False, "reason": "invalid_signature"}
        page = await http.get("/preferences", params={"token": unsubscribe})
        assert page.status_code == 400 and "invalid or has expired" in page.text
        assert (await http.post("/unsub/")).json()["error"]["message"] == "Missing token"
        await owner.mutation("contacts:delete", {"contactId": bob})
        gone = await http.post(f"/unsub/{quote(make_token('unsubscribe', bob), safe='')}")
        assert gone.status_code == 404
        assert gone.json()["error"]["data"] == {"reason": "contact_not_found"}
    assert await _member_lists(site, ada) == {news: "subscribed"}
    # the configured secret signs instead of the instance-derived one
    monkeypatch.setenv("OWLAT_UNSUBSCRIBE_SECRET", "configured")
    with pytest.raises(TokenError, match="invalid_signature"):
        verify_token("unsubscribe", unsubscribe)
    assert verify_token("unsubscribe", make_token("unsubscribe", ada)) == ada


# -- preferences -------------------------------------------------------------------------------


async def test_preferences_endpoints(site: Site) -> None:
    owner = await _owner(site)
    news = await _list(owner, "News")
    offers = await _list(owner, "Offers", doi=True)
    await owner.mutation("mailingLists:update", {"listId": offers, "description": "Deals"})
    ada = await _contact(owner, "ada@example.com", firstName="Ada")
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": ada})
    other = await _owner(site, "other")
    foreign = await _list(other, "Foreign")
    token = quote(make_token("preferences", ada), safe="")
    async with _client(site) as http:
        shown = (await http.get(f"/prefs/verify/{token}")).json()
        assert shown == {
            "ok": True,
            "data": {
                "email": "ada@example.com",
                "firstName": "Ada",
                "teamName": "Acme",
                "topics": [
                    {"_id": news, "name": "News", "subscribed": True},
                    {"_id": offers, "name": "Offers", "subscribed": False, "description": "Deals"},
                ],
            },
        }
        bodies = {
            "globalUnsubscribe_must_be_boolean": {"globalUnsubscribe": "yes"},
            "topicUpdates_must_be_array": {"topicUpdates": {"topicId": news}},
            "too_many_topic_updates": {
                "topicUpdates": [{"topicId": news, "subscribed": True}] * 101
            },
            "invalid_topic_update_shape": {"topicUpdates": [{"topicId": news}]},
        }
        for reason, body in bodies.items():
            answer = await http.post(f"/prefs/update/{token}", json=body)
            assert answer.status_code == 400
            assert answer.json()["error"]["data"] == {"reason": reason}
        mixed = {
            "topicUpdates": [
                {"topicId": news, "subscribed": False},
                {"topicId": foreign, "subscribed": True},
            ]
        }
        refused = await http.post(f"/prefs/update/{token}", json=mixed)
        assert refused.status_code == 404
        assert refused.json()["error"]["data"] == {"reason": "not_found"}
        assert await _member_lists(site, ada) == {news: "subscribed"}  # nothing applied
        swap = {
            "topicUpdates": [
                {"topicId": news, "subscribed": False},
                {"topicId": offers, "subscribed": True},
            ]
        }
        done = await http.post(f"/prefs/update/{token}", json=swap)
        assert done.json() == {"ok": True, "data": {"message": "Preferences updated successfully"}}
        # the preferences page skips double opt-in: the link came by mail
        assert await _member_lists(site, ada) == {offers: "subscribed"}
        assert (await http.post(f"/prefs/update/{token}", content=b"{")).status_code == 400
        big = await http.post(f"/prefs/update/{token}", content=b" " * (100 * 1024 + 1))
        assert big.status_code == 400
        assert big.json()["error"]["message"] == "Request body too large"
        everything = await http.post(f"/prefs/update/{token}", json={"globalUnsubscribe": True})
        assert everything.json()["ok"] is True
        assert await _member_lists(site, ada) == {}
        assert (await _document(site, ada))["unsubscribedAt"] > 0
        unsub_token = quote(make_token("unsubscribe", ada), safe="")
        wrong = await http.post(f"/prefs/update/{unsub_token}", json=swap)
        assert wrong.status_code == 400
        assert wrong.json()["error"]["data"] == {"reason": "invalid_token"}


async def test_preferences_page_form_and_escaping(site: Site) -> None:
    owner = await _owner(site)
    news = await _list(owner, "News <b>weekly</b>")
    offers = await _list(owner, "Offers")
    ada = await _contact(owner, "ada@example.com", firstName="<script>alert(1)</script>")
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": ada})
    link = preferences_link(ada)
    assert link.startswith(site.site_url + "/preferences?token=")
    async with _client(site) as http:
        page = await http.get(link)
        assert page.status_code == 200
        assert "News &lt;b&gt;weekly&lt;/b&gt;" in page.text and "<b>weekly" not in page.text
        assert f'value="{news}" checked' in page.text
        assert f'value="{offers}">' in page.text
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        unsubscribe = await http.get(unsubscribe_link(ada))
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in unsubscribe.text
        assert "<script>" not in unsubscribe.text
        token = unquote(link.split("token=", 1)[1])
        saved = await http.post("/preferences", params={"token": token}, data={"list": [offers]})
        assert saved.status_code == 200 and "Your preferences were saved." in saved.text
        assert f'value="{offers}" checked' in saved.text
        assert await _member_lists(site, ada) == {offers: "subscribed"}
        await http.post("/preferences", params={"token": token}, data={"unsubscribe_all": "1"})
        assert await _member_lists(site, ada) == {}
        assert (await http.delete("/preferences")).status_code == 405


# -- limits ------------------------------------------------------------------------------------


async def test_rate_limits_per_ip_and_token(site: Site) -> None:
    owner = await _owner(site)
    ada = await _contact(owner, "ada@example.com")
    token = quote(make_token("unsubscribe", ada), safe="")
    async with _client(site) as http:
        for _ in range(30):
            assert (await http.get(f"/unsub/verify/{token}")).status_code == 200
        limited = await http.get(f"/unsub/verify/{token}")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json() == {
            "error": {
                "category": "rate_limited",
                "message": "Rate limit exceeded. Please try again later.",
            }
        }
        # the page shares the bucket; another token has its own
        page = await http.get("/unsubscribe", params={"token": unquote(token)})
        assert page.status_code == 429 and page.headers["retry-after"]
        other = quote(make_token("preferences", ada), safe="")
        assert (await http.get(f"/prefs/verify/{other}")).status_code == 200
        for _ in range(20):
            assert (await http.post("/confirm/doi", params={"token": "y" * 32})).status_code == 400
        assert (await http.post("/confirm/doi", params={"token": "y" * 32})).status_code == 429


async def _rate_limit_rows(site: Site) -> int:
    async def count(ctx: Any) -> int:
        return len(await ctx.db.query("rateLimits").collect())

    return int(await in_query(site.application, count))


async def test_junk_tokens_write_nothing_and_an_address_is_limited_in_memory(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token whose signature is wrong is refused before any database work (no rate-limit
    row per junk token); every request of an address counts against its in-memory limit
    (20 per minute here), which answers 429 before the database too."""
    small = dataclasses.replace(instance.current(), public_requests=AddressLimiter(20))
    monkeypatch.setattr(instance, "_current", small)
    owner = await _owner(site)
    news = await _list(owner, "News")
    ada = await _contact(owner, "ada@example.com")
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": ada})
    forged = f"{ada}:{int(now_ms())}:{'A' * 43}"
    async with _client(site) as http:
        for n in range(4):
            junk = quote(f"{ada}:{n}:junk{n}", safe="")
            page = await http.get("/unsubscribe", params={"token": f"junk-{n}"})
            assert page.status_code == 400 and "invalid or has expired" in page.text
            assert (await http.get(f"/unsub/verify/{junk}")).json() == {
                "ok": False,
                "reason": "invalid_signature",
            }
            refused = await http.post(f"/prefs/update/{junk}", json={"globalUnsubscribe": True})
            assert refused.json()["error"]["data"] == {"reason": "invalid_token"}
            assert (await http.post(f"/unsub/{quote(forged, safe='')}")).status_code == 400
        assert await _member_lists(site, ada) == {news: "subscribed"}
        assert await _rate_limit_rows(site) == 0
        # one real token is counted in the database (per IP + token) as before
        token = quote(make_token("unsubscribe", ada), safe="")
        for _ in range(4):
            assert (await http.get(f"/unsub/verify/{token}")).json()["ok"] is True
        assert await _rate_limit_rows(site) == 1
        # 16 + 4 requests from 127.0.0.1: its share of the minute; then 429, junk or not
        limited = await http.get("/unsub/verify/more-junk")
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"]["category"] == "rate_limited"
        assert (await http.get(f"/unsub/verify/{token}")).status_code == 429
        page = await http.get("/preferences", params={"token": "junk"})
        assert page.status_code == 429 and page.headers["retry-after"]
    assert await _rate_limit_rows(site) == 1
    # another address has its own share
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=site.site_url, transport=transport) as other:
        assert (await other.get(f"/unsub/verify/{token}")).json()["ok"] is True


def test_the_address_limiter_forgets_each_window_and_bounds_its_memory() -> None:
    now = [0.0]
    limiter = AddressLimiter(2, 60.0, max_addresses=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [None, None, 60]
    now[0] = 59.2
    assert limiter.take("a") == 1
    now[0] = 60.0  # a new window
    assert [limiter.take("a"), limiter.take("b"), limiter.take("c")] == [None, None, None]
    # the table is full: addresses not yet counted share one count
    assert [limiter.take("d"), limiter.take("e"), limiter.take("f")] == [None, None, 60]
    assert [limiter.take("a"), limiter.take("a")] == [None, 60]  # counted ones keep theirs
