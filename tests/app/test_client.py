"""owlat.client (the Python SDK) against the live server on the site port: every resource
through the sync and the async client, errors by status, client-side refusals, and the
retry rules of upstream's JS SDK (429 always after Retry-After; 5xx and network errors for
GET, PUT and DELETE only), the latter also against deliberately failing servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from owlat.app import api_keys
from owlat.client import (
    AsyncOwlatClient,
    AuthenticationError,
    ConflictError,
    InvalidStateError,
    NetworkError,
    NotFoundError,
    OwlatClient,
    OwlatError,
    RateLimitError,
    RetryPolicy,
    ValidationError,
    attachment,
)
from tests.app.conftest import Caller, Site
from tests.app.mail_setup import settled
from tests.app.test_rest_api import api_key, organization
from tests.e2e.conftest import serve_in_process

FAST = RetryPolicy(initial_delay=0.01)


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    """These tests run on SQLite and PostgreSQL."""
    return site_on_both_engines


async def _setup(site: Site, monkeypatch: pytest.MonkeyPatch) -> tuple[Caller, str, str]:
    """An owner, a key with every scope (and a bucket big enough), a mailing list and a
    published transactional email `welcome`."""
    monkeypatch.setattr("owlat.app.api_keys.BUCKET_CAPACITY", 10_000.0)
    owner, _ = await organization(site, "acme")
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "News", "requireDoubleOptIn": False}
    )
    blocks = [{"id": "t", "type": "text", "content": {"html": "<p>Hi {{name}}</p>"}}]
    email_id = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Welcome", "slug": "welcome", "subject": "Hi {{name}}",
         "content": json.dumps(blocks)},
    )  # fmt: skip
    await owner.mutation("transactionalEmails:publish", {"transactionalEmailId": email_id})
    await owner.mutation(
        "transactionalEmails:create",
        {"name": "Draft", "slug": "draft", "subject": "S", "content": json.dumps(blocks)},
    )
    return owner, await api_key(owner), list_id


def _sync_tour(base_url: str, key: str, list_id: str) -> dict[str, Any]:
    """Every resource through the synchronous client (run in a thread: the server runs in
    the test's event loop)."""
    with OwlatClient(key, base_url=base_url, retry=FAST) as owlat:
        created = owlat.contacts.create("ada@example.com", first_name="Ada")
        assert (created["email"], created["firstName"], created["source"]) == (
            "ada@example.com", "Ada", "api",
        )  # fmt: skip
        assert owlat.contacts.get("Ada@Example.com") == created
        changed = owlat.contacts.update(created["id"], first_name=None, last_name="Lovelace")
        assert (changed["firstName"], changed["lastName"]) == (None, "Lovelace")
        for i in range(3):
            owlat.contacts.create(f"c{i}@example.com")
        page = owlat.contacts.list(limit=2)
        assert len(page["data"]) == 2 and page["pagination"]["isDone"] is False
        every = list(owlat.contacts.list_all(page_size=2))
        assert len(every) == 4 and len({c["id"] for c in every}) == 4
        event = owlat.events.send("ada@example.com", "signed_up", event_properties={"plan": "pro"})
        assert event["eventName"] == "signed_up" and event["contactCreated"] is False
        joined = owlat.topics.add_contact(list_id, email="ada@example.com")
        assert joined["success"] is True and joined["topicId"] == list_id
        assert owlat.topics.remove_contact(list_id, "ada@example.com")["removed"] is True
        queued = owlat.transactional.send(
            slug="welcome", email="ada@example.com", data_variables={"name": "Ada"},
            attachments=[attachment("hello.txt", content=b"hello")], idempotency_key="w-1",
        )  # fmt: skip
        assert queued["status"] == "queued" and queued["contactCreated"] is False
        again = owlat.transactional.send(
            slug="welcome", email="ada@example.com", data_variables={"name": "Ada"},
            attachments=[attachment("hello.txt", content=b"hello")], idempotency_key="w-1",
        )  # fmt: skip
        assert again == queued
        with pytest.raises(NotFoundError) as missing:
            owlat.contacts.get("nobody@example.com")
        assert (missing.value.status, missing.value.code, missing.value.message) == (
            404, "not_found", "Contact not found",
        )  # fmt: skip
        assert missing.value.rate_limit.limit == 10
        with pytest.raises(ConflictError):
            owlat.contacts.create("ada@example.com")
        with pytest.raises(ValidationError, match="^Invalid email format$"):
            owlat.contacts.create("not an address")
        with pytest.raises(ValidationError, match="^language must be a language code"):
            owlat.transactional.send(slug="welcome", email="x@example.com", language="xx-yyyy")
        assert owlat.contacts.delete("ada@example.com") == {"id": created["id"], "deleted": True}
    return dict(queued)


async def test_the_sync_client_covers_every_resource(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, key, list_id = await _setup(site, monkeypatch)
    queued = await asyncio.to_thread(_sync_tour, site.site_url, key, list_id)
    send = await settled(owner, queued["transactionalEmailId"])
    assert send["status"] == "sent"
    (mail,) = [m for m in site.outbox() if m["Subject"] == "Hi Ada"]
    assert [p.get_filename() for p in mail.iter_attachments()] == ["hello.txt"]


async def test_the_async_client_and_refusals_before_sending(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key, list_id = await _setup(site, monkeypatch)
    async with AsyncOwlatClient(key, base_url=site.site_url, retry=FAST) as owlat:
        await owlat.contacts.create("bob@example.com", last_name="Builder")
        await owlat.contacts.create("eve@example.com")
        emails = sorted([c["email"] async for c in owlat.contacts.list_all(page_size=1)])
        assert emails == ["bob@example.com", "eve@example.com"]
        added = await owlat.topics.add_contact(list_id, email="bob@example.com")
        assert added["doiStatus"] in ("not_required", "confirmed")
        queued = await owlat.transactional.send(slug="welcome", email="new@example.com")
        assert queued["contactCreated"] is True and queued["slug"] == "welcome"
        with pytest.raises(InvalidStateError) as unpublished:
            await owlat.transactional.send(slug="draft", email="new@example.com")
        assert (unpublished.value.status, unpublished.value.code) == (422, "invalid_state")
        assert unpublished.value.data == {"reason": "template_not_published"}
        with pytest.raises(NotFoundError) as missing:
            await owlat.transactional.send(transactional_id="nope", email="new@example.com")
        assert missing.value.data == {"reason": "template_not_found"}
        refusals = [
            (owlat.transactional.send(email="a@b.co"), "Either transactional_id or slug"),
            (owlat.topics.add_contact(list_id), "Give one of email or contact_id"),
            (
                owlat.transactional.send(
                    slug="welcome",
                    email="a@b.co",
                    attachments=[{"filename": "a.txt", "url": "http://x.co/a"}],
                ),
                r"attachments\[0\]\.url must be an HTTPS URL",
            ),
            (
                owlat.transactional.send(
                    slug="welcome", email="a@b.co", attachments=[attachment("a")] * 11
                ),
                "At most 10 attachments",
            ),
        ]
        for pending, message in refusals:
            with pytest.raises(ValidationError, match=message) as refused:
                await pending
            assert refused.value.status is None
    async with AsyncOwlatClient("lm_live_" + "x" * 32, base_url=site.site_url) as stranger:
        with pytest.raises(AuthenticationError, match="^Invalid API key$"):
            await stranger.contacts.list()


async def test_429_is_retried_after_retry_after(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a slow refill, so the 20 requests empty the bucket however slowly they are served (and
    # enough retries for the last of them to get a token)
    monkeypatch.setattr(api_keys, "RATE_PER_SECOND", 1.0)
    owner, _ = await organization(site, "acme")
    key = await api_key(owner)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    patient = RetryPolicy(max_retries=10)
    async with AsyncOwlatClient(key, base_url=site.site_url, sleep=sleep, retry=patient) as owlat:
        # POSTs too: a 429 means the request was not carried out
        created = await asyncio.gather(
            *(owlat.contacts.create(f"r{i}@example.com") for i in range(20))
        )
    assert len({c["id"] for c in created}) == 20
    assert waits and all(1.0 <= wait <= 30 for wait in waits)
    async with AsyncOwlatClient(key, base_url=site.site_url, retry=None) as impatient:
        with pytest.raises(RateLimitError) as limited:
            await asyncio.gather(*(impatient.contacts.list(limit=1) for _ in range(20)))
    assert limited.value.retry_after >= 1 and limited.value.rate_limit.remaining == 0


# -- against failing servers -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def flaky(failures: int) -> AsyncIterator[tuple[str, list[str]]]:
    """A server answering 503 to the first `failures` requests, then 200 `{data: ...}`;
    yields its URL and the methods it was asked."""
    seen: list[str] = []

    async def any_path(request: Request) -> Response:
        seen.append(request.method)
        if len(seen) <= failures:
            return Response(b"", status_code=503)
        return JSONResponse({"data": {"ok": True}})

    methods = ["GET", "POST", "PUT", "DELETE"]
    app = Starlette(routes=[Route("/{rest:path}", any_path, methods=methods)])
    async with serve_in_process(app) as url:
        yield url, seen


@contextlib.asynccontextmanager
async def hanging_up() -> AsyncIterator[tuple[str, list[int]]]:
    """A server that closes every connection without answering; yields its URL and a
    list counting the connections."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", connections
    finally:
        server.close()
        await server.wait_closed()


async def test_5xx_is_retried_for_get_put_delete_but_never_post() -> None:
    async with flaky(2) as (url, seen), AsyncOwlatClient("k", base_url=url, retry=FAST) as owlat:
        assert await owlat.contacts.get("a@b.co") == {"ok": True}
    assert seen == ["GET", "GET", "GET"]
    async with flaky(1) as (url, seen), AsyncOwlatClient("k", base_url=url, retry=FAST) as owlat:
        with pytest.raises(OwlatError) as failed:
            await owlat.contacts.create("a@b.co")
    assert seen == ["POST"] and failed.value.status == 503 and type(failed.value) is OwlatError
    async with flaky(3) as (url, seen), AsyncOwlatClient("k", base_url=url, retry=FAST) as owlat:
        with pytest.raises(OwlatError, match="^HTTP 503$"):
            await owlat.contacts.delete("a@b.co")
    assert seen == ["DELETE"] * 3  # max_retries 2


async def test_network_errors_are_retried_for_idempotent_methods_only() -> None:
    async with hanging_up() as (url, connections):
        policy = RetryPolicy(max_retries=3, initial_delay=0.01)
        async with AsyncOwlatClient("k", base_url=url, retry=policy) as owlat:
            with pytest.raises(NetworkError) as failed:
                await owlat.contacts.update("a@b.co", first_name="A")
            assert isinstance(failed.value.__cause__, httpx.TransportError)
            assert len(connections) == 4
            with pytest.raises(NetworkError):
                await owlat.events.send("a@b.co", "x")
            assert len(connections) == 5


def test_the_sync_client_retries_as_the_async_one() -> None:
    async def run() -> tuple[list[str], list[float]]:
        waits: list[float] = []
        async with flaky(2) as (url, seen):

            def call() -> None:
                with OwlatClient("k", base_url=url, sleep=waits.append) as owlat:
                    assert owlat.contacts.list() == {"data": {"ok": True}}

            await asyncio.to_thread(call)
        return seen, waits

    seen, waits = asyncio.run(run())
    assert seen == ["GET"] * 3 and waits == [0.5, 1.0]
