"""The REST API v1 over real HTTP on the site port (reference §3, §16 items 6–8)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from owlat.app.api_keys import SCOPES
from owlat.runtime.testing import in_query
from tests.app.conftest import Caller, Site, signed_in, with_organization


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    """These tests run on SQLite and PostgreSQL."""
    return site_on_both_engines


ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
RATE = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.fixture
def no_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket big enough for a test's requests (the 429 test keeps the real one)."""
    monkeypatch.setattr("owlat.app.api_keys.BUCKET_CAPACITY", 10_000.0)


async def organization(site: Site, slug: str) -> tuple[Caller, str]:
    owner = await signed_in(site.application, f"owner@{slug}.example.com")
    return owner, await with_organization(owner, slug)


async def api_key(owner: Caller, scopes: tuple[str, ...] = SCOPES) -> str:
    created = await owner.mutation("apiKeys:create", {"name": "test", "scopes": list(scopes)})
    return str(created["apiKey"])


@contextlib.asynccontextmanager
async def client(site: Site, key: str | None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=site.site_url + "/api/v1", headers=headers) as http:
        yield http


@contextlib.asynccontextmanager
async def api(site: Site, slug: str = "acme") -> AsyncIterator[httpx.AsyncClient]:
    owner, _ = await organization(site, slug)
    async with client(site, await api_key(owner)) as http:
        yield http


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["category"], body["message"]


def integral_floats(text: str) -> list[str]:
    """The numbers of a JSON text written with a fraction or an exponent although they are
    integers below 10^21, which JavaScript's `JSON.stringify` writes without (`120`)."""
    found: list[str] = []

    def number(literal: str) -> float:
        value = float(literal)
        if value.is_integer() and abs(value) < 1e21:
            found.append(literal)
        return value

    json.loads(text, parse_float=number)
    return found


async def create(http: httpx.AsyncClient, email: str, **names: Any) -> dict[str, Any]:
    response = await http.post("/contacts", json={"email": email, **names})
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


# -- health, CORS, authentication, scopes, rate limit -------------------------------------------


async def test_health_openapi_and_cors(site: Site) -> None:
    async with client(site, None) as http:
        health = await http.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and ISO.match(health.json()["timestamp"])
        document = (await http.get("/openapi.json")).json()
        assert document["openapi"].startswith("3.1")
        assert "/api/v1/contacts/{idOrEmail}" in document["paths"]
        preflight = await http.options("/contacts", headers={"origin": "https://evil.example"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == site.site_url
        assert preflight.headers["access-control-max-age"] == "86400"
        assert "PUT" in preflight.headers["access-control-allow-methods"]
        own = await http.options("/contacts/x", headers={"origin": site.site_url})
        assert own.headers["access-control-allow-origin"] == site.site_url
        assert own.headers["vary"] == "Origin"
        unknown = await http.get("/nothing-here")
        assert error(unknown) == (404, "not_found", "Not found")
        wrong = await http.patch("/contacts")
        assert wrong.status_code == 405
        assert wrong.json() == {"error": {"message": "Method not allowed"}}


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Missing or invalid Authorization header. Use: Authorization: Bearer <api_key>"),
        (
            "Basic a b",
            "Missing or invalid Authorization header. Use: Authorization: Bearer <api_key>",
        ),
        ("Bearer lm_live_short", "Invalid API key format"),
        ("Bearer lm_live_" + "x" * 32, "Invalid API key"),
        ("lm_live_" + "y" * 32, "Invalid API key"),
    ],
)
async def test_401_without_rate_headers(
    site: Site, authorization: str | None, message: str
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    async with client(site, None) as http:
        response = await http.get("/contacts", headers=headers)
    assert error(response) == (401, "unauthenticated", message)
    assert not any(name in response.headers for name in RATE)
    assert response.headers["access-control-allow-origin"] == site.site_url


async def test_bare_key_is_accepted_and_scopes_are_checked_before_the_body(site: Site) -> None:
    owner, _ = await organization(site, "acme")
    key = await api_key(owner, ("contacts:read",))
    async with client(site, None) as http:
        listed = await http.get("/contacts", headers={"authorization": key})
        assert listed.status_code == 200
        assert listed.headers["x-ratelimit-limit"] == "10"
        assert listed.headers["x-ratelimit-remaining"] == "9"
        refusals = [
            await http.post("/contacts", content=b"{not json", headers={"authorization": key}),
            await http.put("/contacts/a@b.co", json={}, headers={"authorization": key}),
            await http.delete("/contacts/a@b.co", headers={"authorization": key}),
            await http.post("/events", json={}, headers={"authorization": key}),
        ]
    for response in refusals:
        code, category, message = error(response)
        assert (code, category) == (403, "forbidden")
        assert message.startswith("This API key is missing the required scope: ")
        assert all(name in response.headers for name in RATE)
    assert error(refusals[0])[2].endswith("contacts:write")
    assert error(refusals[3])[2].endswith("events:write")


async def test_429_after_the_burst(site: Site) -> None:
    owner, _ = await organization(site, "acme")
    async with client(site, await api_key(owner)) as http:
        started = time.monotonic()
        answers = await asyncio.gather(*(http.get("/contacts?limit=1") for _ in range(40)))
        elapsed = time.monotonic() - started
    codes = [a.status_code for a in answers]
    # a burst of 15, then 10 a second
    assert 15 <= codes.count(200) <= 15 + 10 * elapsed + 1 and 429 in codes, (codes, elapsed)
    limited = next(a for a in answers if a.status_code == 429)
    assert error(limited) == (
        429,
        "rate_limited",
        "Rate limit exceeded. Maximum 10 requests per second.",
    )
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-remaining"] == "0"


# -- contacts ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_rate_limit")
async def test_create_get_update_delete(site: Site) -> None:
    async with api(site) as http:
        created = await create(http, "  Jane@Example.com ", firstName=" Jane ", lastName="Smith")
        assert created["email"] == "jane@example.com"
        assert (created["firstName"], created["lastName"]) == ("Jane", "Smith")
        assert created["source"] == "api"
        assert ISO.match(created["createdAt"]) and ISO.match(created["updatedAt"])
        assert set(created) == {
            "id", "email", "firstName", "lastName", "source", "createdAt", "updatedAt"
        }  # fmt: skip

        by_id = await http.get(f"/contacts/{created['id']}")
        by_email = await http.get("/contacts/JANE%40example.com")
        assert by_id.json() == by_email.json() == {"data": created}

        changed = await http.put(f"/contacts/{created['id']}", json={"lastName": None})
        assert changed.status_code == 200
        assert changed.json()["data"]["lastName"] is None
        moved = await http.put(
            "/contacts/jane@example.com", json={"email": "j@example.com", "firstName": "J"}
        )
        assert moved.json()["data"]["email"] == "j@example.com"
        assert moved.json()["data"]["firstName"] == "J"
        gone = await http.get("/contacts/jane@example.com")
        assert error(gone) == (404, "not_found", "Contact not found")

        deleted = await http.delete("/contacts/j@example.com")
        assert deleted.json() == {"data": {"id": created["id"], "deleted": True}}
        assert error(await http.get(f"/contacts/{created['id']}"))[0] == 404
        assert error(await http.delete(f"/contacts/{created['id']}"))[0] == 404


@pytest.mark.usefixtures("no_rate_limit")
async def test_create_errors(site: Site) -> None:
    async with api(site) as http:
        await create(http, "taken@example.com")
        cases = [
            (b"{oops", "Invalid JSON in request body"),
            (b"", "Invalid JSON in request body"),
            (b'{"email": NaN}', "Invalid JSON in request body"),
            (b'"x"', "Request body must be a JSON object"),
            (
                b'{"email": "' + b"a" * 1_000_000 + b'"}',
                "Request body must be at most 1000000 bytes",
            ),
            (b"{}", "Email is required"),
            (b'{"email": 5}', "Email must be a string"),
            (b'{"email": "nope"}', "Invalid email format"),
            (b'{"email": "a@b.co", "firstName": 1}', "firstName must be a string"),
            (
                b'{"email": "a@b.co", "lastName": "' + b"x" * 201 + b'"}',
                "lastName must be at most 200 characters",
            ),
        ]
        for body, message in cases:
            response = await http.post("/contacts", content=body)
            assert error(response) == (400, "invalid_input", message), body
        conflict = await http.post("/contacts", json={"email": "TAKEN@example.com"})
        assert error(conflict) == (
            409,
            "already_exists",
            "A contact with this email already exists",
        )


@pytest.mark.usefixtures("no_rate_limit")
async def test_update_errors(site: Site) -> None:
    async with api(site) as http:
        contact = await create(http, "one@example.com")
        await create(http, "two@example.com")
        path = f"/contacts/{contact['id']}"
        for body, message in [
            ({"email": None}, "email must be a string"),
            ({"email": 3}, "email must be a string"),
            ({"email": "bad"}, "Invalid email format"),
            ({"firstName": ["x"]}, "firstName must be a string"),
        ]:
            assert error(await http.put(path, json=body)) == (400, "invalid_input", message)
        conflict = await http.put(path, json={"email": "Two@example.com"})
        assert error(conflict) == (
            409,
            "already_exists",
            "A contact with this email already exists: two@example.com",
        )
        missing = await http.put("/contacts/nobody@example.com", json={})
        assert error(missing) == (404, "not_found", "Contact not found")
        unchanged = await http.get(path)
        assert unchanged.json()["data"] == contact


@pytest.mark.usefixtures("no_rate_limit")
async def test_id_or_email_encoding(site: Site) -> None:
    async with api(site) as http:
        contact = await create(http, "a+b@x.com")
        found = await http.get("/contacts/a%2Bb%40x.com")
        assert found.json()["data"]["id"] == contact["id"]
        bad = "Invalid contact ID or email format"
        for segment in ("%ZZ", "%E0%A4%A", "%C3%28", "a%", "short", "a%2Fb"):
            for method in ("GET", "PUT", "DELETE"):
                response = await http.request(method, f"/contacts/{segment}", json={})
                assert error(response) == (400, "invalid_input", bad), (method, segment)
        # an id of another table, and an id-looking string: not found
        for segment in (contact["id"][:-1] + "A", "abcdefghijklmnop"):
            assert error(await http.get(f"/contacts/{segment}")) == (
                404,
                "not_found",
                "Contact not found",
            )


@pytest.mark.usefixtures("no_rate_limit")
async def test_delete_is_hard_and_takes_the_timeline_along(site: Site) -> None:
    owner, _ = await organization(site, "acme")
    news = await owner.mutation("mailingLists:create", {"name": "N", "requireDoubleOptIn": False})
    async with client(site, await api_key(owner)) as http:
        contact = await create(http, "hard@example.com")
        sent = await http.post("/events", json={"email": "hard@example.com", "eventName": "signup"})
        assert sent.status_code == 201
        joined = await http.post(f"/topics/{news}/contacts", json={"email": "hard@example.com"})
        assert joined.status_code == 201
        page = {"numItems": 10, "cursor": None}
        timeline = await owner.query(
            "contacts:activities", {"contactId": contact["id"], "paginationOpts": page}
        )
        assert [a["activityType"] for a in timeline["page"]] == [
            "list_subscribed",
            "event_received",
            "created",
        ]
        assert (await http.delete(f"/contacts/{contact['id']}")).status_code == 200

    async def left(ctx: Any) -> list[Any]:
        return [
            *await ctx.db.query("contactActivities").collect(),
            *await ctx.db.query("events").collect(),
            *await ctx.db.query("mailingListMembers").collect(),
            *[c for c in await ctx.db.query("contacts").collect() if c["_id"] == contact["id"]],
        ]

    assert await in_query(site.application, left) == []
    assert (await owner.query("mailingLists:get", {"listId": news}))["memberCount"] == 0
    again = await owner.mutation("contacts:createFromSession", {"email": "hard@example.com"})
    assert again != contact["id"]


@pytest.mark.usefixtures("no_rate_limit")
async def test_pagination_walk(site: Site) -> None:
    owner, _ = await organization(site, "acme")
    async with client(site, await api_key(owner)) as http:
        made = [(await create(http, f"p{i:02d}@example.com"))["id"] for i in range(60)]
        soft = await owner.mutation("contacts:createFromSession", {"email": "soft@example.com"})
        await owner.mutation("contacts:delete", {"contactId": soft})
        seen: list[str] = []
        cursor: str | None = None
        pages = []
        while True:
            params: dict[str, Any] = {"limit": 25}
            if cursor is not None:
                params["cursor"] = cursor
            body = (await http.get("/contacts", params=params)).json()
            pagination = body["pagination"]
            pages.append(len(body["data"]))
            assert pagination["limit"] == 25 and pagination["totalItems"] == 60
            assert (pagination["cursor"] is None) == pagination["isDone"]
            seen += [c["id"] for c in body["data"]]
            cursor = pagination["cursor"]
            if pagination["isDone"]:
                break
            assert len(pages) < 5
        assert seen == list(reversed(made))  # newest first, no duplicate, no gap
        assert pages[:2] == [25, 25] and sum(pages) == 60

        default = (await http.get("/contacts")).json()["pagination"]
        assert default["limit"] == 25
        for limit in ("500", "9" * 5000, "0007"):
            clamped = (await http.get(f"/contacts?limit={limit}")).json()
            expected = 7 if limit == "0007" else 100
            assert clamped["pagination"]["limit"] == expected
            assert len(clamped["data"]) == min(expected, 60)
        for limit in ("0", "000", "-1", "abc", "2.5", "", "%2B3"):
            assert error(await http.get(f"/contacts?limit={limit}")) == (
                400,
                "invalid_input",
                "Invalid limit",
            ), limit
        for cursor_text in ("!!", "Zm9v", "x"):
            response = await http.get("/contacts", params={"cursor": cursor_text})
            assert error(response) == (400, "invalid_input", "Invalid cursor"), cursor_text


async def test_numbers_are_written_as_javascript_writes_them(site: Site) -> None:
    async with api(site) as http:
        await create(http, "ada@example.com")
        listed = await http.get("/contacts")
        assert listed.json()["pagination"]["totalItems"] == 1
        assert '"totalItems":1,' in listed.text
        sent = await http.post("/events", json={"email": "ada@example.com", "eventName": "x"})
        assert sent.status_code == 201 and '"triggeredAutomations":0,' in sent.text
        document = await http.get("/openapi.json")
        for response in (listed, sent, document):
            assert integral_floats(response.text) == [], response.text


@pytest.mark.usefixtures("no_rate_limit")
async def test_search_is_the_dashboard_search(site: Site) -> None:
    owner, _ = await organization(site, "acme")
    async with client(site, await api_key(owner)) as http:
        await create(http, "zoe@example.com", firstName="Zoe", lastName="Quinn")
        await create(http, "adam@example.com", firstName="Adam", lastName="Zed")
        await create(http, "bob@example.com")
        for search, expected in [
            ("ZO", ["zoe@example.com"]),
            ("quinn", ["zoe@example.com"]),
            ("z", ["adam@example.com", "zoe@example.com"]),
            ("nothing", []),
        ]:
            body = (await http.get("/contacts", params={"search": search})).json()
            assert sorted(c["email"] for c in body["data"]) == expected, search
            assert body["pagination"]["totalItems"] == 3
            page = {"numItems": 50, "cursor": None}
            dashboard = await owner.query(
                "contacts:listFromSession", {"paginationOpts": page, "search": search}
            )
            assert sorted(c["email"] for c in dashboard["page"]) == expected


@pytest.mark.usefixtures("no_rate_limit")
async def test_a_key_of_one_organization_cannot_reach_another(site: Site) -> None:
    async with api(site, "org-a") as a, api(site, "org-b") as b:
        theirs = await create(b, "secret@example.com", firstName="B")
        await create(a, "mine@example.com")
        for target in (theirs["id"], "secret@example.com"):
            assert error(await a.get(f"/contacts/{target}")) == (
                404,
                "not_found",
                "Contact not found",
            )
            assert error(await a.put(f"/contacts/{target}", json={"firstName": "X"}))[0] == 404
            assert error(await a.delete(f"/contacts/{target}"))[0] == 404
        listed = (await a.get("/contacts")).json()
        assert [c["email"] for c in listed["data"]] == ["mine@example.com"]
        assert listed["pagination"]["totalItems"] == 1
        # the same address may live in both organizations
        assert (await a.post("/contacts", json={"email": "secret@example.com"})).status_code == 201
        still = (await b.get(f"/contacts/{theirs['id']}")).json()["data"]
        assert still == theirs


# -- events --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_rate_limit")
async def test_events_are_stored_and_readable(site: Site) -> None:
    owner, _ = await organization(site, "acme")
    async with client(site, await api_key(owner)) as http:
        unknown = await http.post(
            "/events", json={"email": "new@example.com", "eventName": "signup"}
        )
        assert error(unknown) == (
            404,
            "not_found",
            'Contact with email "new@example.com" not found. '
            "Set createContactIfNotExists: true to create the contact automatically.",
        )
        sent = await http.post(
            "/events",
            json={
                "email": "New@Example.com",
                "eventName": "plan_upgraded",
                "eventProperties": {"plan": "pro", "seats": 3, "trial": False, "ref": None},
                "createContactIfNotExists": True,
            },
        )
        assert sent.status_code == 201, sent.text
        recorded = sent.json()["data"]
        assert re.fullmatch(r"evt_[0-9a-z]{9,}", recorded["eventId"])
        assert recorded["contactCreated"] is True and recorded["triggeredAutomations"] == 0
        again = await http.post("/events", json={"email": "new@example.com", "eventName": "login"})
        assert again.json()["data"]["contactCreated"] is False
        assert again.json()["data"]["contactId"] == recorded["contactId"]
        contact = (await http.get("/contacts/new@example.com")).json()["data"]
        assert contact["source"] == "api"

    page = {"numItems": 10, "cursor": None}
    events = await owner.query(
        "events:listForContact", {"contactId": recorded["contactId"], "paginationOpts": page}
    )
    assert [e["eventName"] for e in events["page"]] == ["login", "plan_upgraded"]
    stored = events["page"][1]
    assert stored["eventId"] == recorded["eventId"] and stored["source"] == "api"
    assert stored["eventProperties"] == {"plan": "pro", "seats": 3, "trial": False, "ref": None}
    named = await owner.query("events:list", {"eventName": "login", "paginationOpts": page})
    assert [e["eventName"] for e in named["page"]] == ["login"]
    everything = await owner.query("events:list", {"paginationOpts": page})
    assert len(everything["page"]) == 2
    timeline = await owner.query(
        "contacts:activities", {"contactId": recorded["contactId"], "paginationOpts": page}
    )
    kinds = [(a["activityType"], a.get("metadata")) for a in timeline["page"]]
    assert kinds == [
        ("event_received", {"eventName": "login"}),
        ("event_received", {"eventName": "plan_upgraded"}),
        ("created", {"source": "api"}),
    ]


@pytest.mark.usefixtures("no_rate_limit")
async def test_event_errors(site: Site) -> None:
    async with api(site) as http:
        await create(http, "e@example.com")
        base = {"email": "e@example.com", "eventName": "ok"}
        for body, message in [
            ({"eventName": "x"}, "email is required"),
            ({**base, "email": 1}, "email must be a string"),
            ({**base, "email": "nope"}, "Invalid email format"),
            ({"email": "e@example.com"}, "eventName is required"),
            ({**base, "eventName": 5}, "eventName must be a string"),
            ({**base, "eventProperties": []}, "eventProperties must be an object"),
            ({**base, "eventProperties": {"a": {"b": 1}}}, "eventProperties.a must be a string"),
            ({**base, "eventProperties": {"n": 2**60 + 1}}, "eventProperties.n must be a number"),
            ({**base, "eventProperties": {"$x": 1}}, "eventProperties keys must be"),
            ({**base, "createContactIfNotExists": "yes"}, "createContactIfNotExists must be"),
        ]:
            code, category, text = error(await http.post("/events", json=body))
            assert (code, category) == (400, "invalid_input") and text.startswith(message), body
        for name in ("1abc", "has space", "x" * 101, ""):
            response = await http.post("/events", json={**base, "eventName": name})
            code, _, text = error(response)
            assert code == 400 and text.startswith("eventName"), name
        assert (await http.post("/events", content=b"[")).json()["error"]["message"] == (
            "Invalid JSON in request body"
        )


# -- mailing-list membership ---------------------------------------------------------------------


@pytest.mark.usefixtures("no_rate_limit")
@pytest.mark.parametrize("spelling", ["topics", "mailing-lists"])
async def test_subscribe_and_unsubscribe(site: Site, spelling: str) -> None:
    owner, _ = await organization(site, "acme")
    plain = await owner.mutation(
        "mailingLists:create", {"name": "News", "requireDoubleOptIn": False}
    )
    doi = await owner.mutation("mailingLists:create", {"name": "Letters"})
    async with client(site, await api_key(owner)) as http:
        contact = await create(http, "m@example.com")
        joined = await http.post(f"/{spelling}/{plain}/contacts", json={"email": "M@example.com"})
        assert joined.status_code == 201, joined.text
        assert joined.json() == {
            "data": {
                "success": True,
                "contactId": contact["id"],
                "topicId": plain,
                "doiStatus": "not_required",
            }
        }
        twice = await http.post(f"/{spelling}/{plain}/contacts", json={"contactId": contact["id"]})
        assert twice.status_code == 201 and twice.json()["data"]["doiStatus"] == "not_required"
        pending = await http.post(f"/{spelling}/{doi}/contacts", json={"email": "m@example.com"})
        assert pending.json()["data"]["doiStatus"] == "pending"
        lists = await owner.query("mailingLists:listsForContact", {"contactId": contact["id"]})
        assert sorted((x["name"], x["membershipStatus"]) for x in lists) == [
            ("Letters", "pending"),
            ("News", "subscribed"),
        ]

        removed = await http.delete(f"/{spelling}/{plain}/contacts/m%40example.com")
        assert removed.json() == {"data": {"success": True, "removed": True}}
        again = await http.delete(f"/{spelling}/{plain}/contacts/{contact['id']}")
        assert again.json() == {"data": {"success": True, "removed": False}}
        lists = await owner.query("mailingLists:listsForContact", {"contactId": contact["id"]})
        assert [x["name"] for x in lists] == ["Letters"]


@pytest.mark.usefixtures("no_rate_limit")
async def test_membership_errors_and_tenancy(site: Site) -> None:
    owner, _ = await organization(site, "acme")
    other, _ = await organization(site, "other")
    mine = await owner.mutation("mailingLists:create", {"name": "Mine"})
    theirs = await other.mutation("mailingLists:create", {"name": "Theirs"})
    their_contact = await other.mutation("contacts:createFromSession", {"email": "t@example.com"})
    async with client(site, await api_key(owner)) as http:
        await create(http, "m@example.com")
        url = f"/topics/{mine}/contacts"
        for body, message in [
            (b"nope", "Invalid JSON in request body"),
            (b"{}", "Either email or contactId is required"),
            (b'{"email": "bad"}', "Invalid email format"),
            (b'{"email": 4}', "Invalid email format"),
            (b'{"contactId": "no"}', "Invalid contactId format"),
        ]:
            assert error(await http.post(url, content=body)) == (400, "invalid_input", message)
        for path, message in [
            ("/topics/short/contacts", "Invalid topic ID format"),
            ("/topics/%ZZ/contacts", "Invalid topic ID format"),
            ("/topics//contacts", "Topic ID is required"),
        ]:
            response = await http.post(path, json={"email": "m@example.com"})
            assert error(response) == (400, "invalid_input", message), path
        assert error(await http.post(f"/topics/{mine}/members", json={}))[0] == 404
        missing = [
            (f"/topics/{theirs}/contacts", {"email": "m@example.com"}, "Topic not found"),
            (url, {"email": "x@example.com"}, 'Contact with email "x@example.com" not found'),
            (url, {"email": "t@example.com"}, 'Contact with email "t@example.com" not found'),
            (url, {"contactId": their_contact}, "Contact not found"),
        ]
        for path, payload, message in missing:
            assert error(await http.post(path, json=payload)) == (404, "not_found", message)
        for path in (f"/topics/{theirs}/contacts/m@example.com", f"{url}/{their_contact}"):
            assert error(await http.delete(path))[0] == 404
        assert error(await http.delete(f"{url}/%ZZ")) == (
            400,
            "invalid_input",
            "Invalid contact ID or email format",
        )
    members = await other.query(
        "mailingLists:listMembers",
        {"listId": theirs, "paginationOpts": {"numItems": 5, "cursor": None}},
    )
    assert members["page"] == []


@pytest.mark.usefixtures("no_rate_limit")
async def test_an_unexpected_failure_is_a_json_500(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("owlat.app.rest_api.contacts.list_contacts", broken)
    async with api(site) as http:
        response = await http.get("/contacts")
    assert error(response) == (500, "internal", "Internal server error")
    assert "disk on fire" not in response.text
    assert all(name in response.headers for name in RATE)


async def test_a_client_gone_before_its_body_is_nobodys_error(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that disconnects (or is cut off for sending too slowly) mid-body is not
    logged as a failing handler."""
    owner, _ = await organization(site, "acme")
    key = await api_key(owner)
    host, port = site.site_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/v1/contacts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + key.encode() + b"\r\ncontent-length: 100\r\n\r\n{"
    )
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await asyncio.sleep(0.3)
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
