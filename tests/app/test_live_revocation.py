"""Revoking a session takes the identity away from live sync sockets within a second: the
subscribed session-scoped queries read the session row, so they re-run and fail."""

from __future__ import annotations

import time

import pytest

from tests.app.conftest import Site
from tests.e2e.sync_harness import RawSocket
from tests.e2e.test_sync_socket import add, modify


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    """These tests run on SQLite and PostgreSQL."""
    return site_on_both_engines


async def test_revoked_session_fails_live_subscriptions(site: Site) -> None:
    async with site.browser() as browser, site.browser() as other_device:
        credentials = {"email": "live@example.com", "password": "live-password", "name": "Live"}
        assert (await browser.post("/sign-up/email", json=credentials)).status_code == 200
        token = (await browser.get("/token")).json()["token"]
        socket_url = site.url.replace("http://", "ws://") + "/api/sync"
        async with RawSocket.open(socket_url) as socket:
            await socket.send(
                {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token}
            )
            await socket.receive()
            await socket.send(modify(0, 1, add(0, "auth:getCurrentUser", {})))
            (subscribed,) = (await socket.receive())["modifications"]
            assert subscribed["value"]["email"] == "live@example.com"

            await other_device.post(
                "/sign-in/email", json={k: credentials[k] for k in ("email", "password")}
            )
            revoked_at = time.monotonic()
            assert (await other_device.post("/revoke-other-sessions", json={})).status_code == 200
            (failed,) = (await socket.receive(within=1.0))["modifications"]
            assert time.monotonic() - revoked_at < 1.0
            assert failed["type"] == "QueryFailed"
            assert failed["errorData"] == "Not authenticated"


async def test_paginated_contacts_subscription_sees_inserts_and_fails_on_revocation(
    site: Site,
) -> None:
    """A subscribed first page (its key moves to the journal pinning its end cursor) is
    still pushed a new result by a later insert, and still fails when the session is
    revoked (issue 14: the moved result was no longer tracked, so neither arrived)."""
    async with site.browser() as browser, site.browser() as other_device:
        credentials = {"email": "pages@example.com", "password": "pages-password", "name": "P"}
        assert (await browser.post("/sign-up/email", json=credentials)).status_code == 200
        created = await browser.post("/organization/create", json={"name": "Acme", "slug": "acme"})
        assert created.status_code == 200
        token = (await browser.get("/token")).json()["token"]
        socket_url = site.url.replace("http://", "ws://") + "/api/sync"
        first_page = {"paginationOpts": {"numItems": 50, "cursor": None}}
        async with RawSocket.open(socket_url) as socket, RawSocket.open(socket_url) as writer:
            for connection in (socket, writer):
                authenticate = {"type": "Authenticate", "baseVersion": 0, "tokenType": "User"}
                await connection.send({**authenticate, "value": token})
                await connection.receive()
            await socket.send(modify(0, 1, add(0, "contacts:listFromSession", first_page)))
            (subscribed,) = (await socket.receive())["modifications"]
            assert subscribed["value"]["page"] == []

            await writer.send(
                {
                    "type": "Mutation",
                    "requestId": 0,
                    "udfPath": "contacts:createFromSession",
                    "args": [{"email": "new@example.com"}],
                }
            )
            (updated,) = (await socket.receive(within=2.0))["modifications"]
            assert [c["email"] for c in updated["value"]["page"]] == ["new@example.com"]

            await other_device.post(
                "/sign-in/email", json={k: credentials[k] for k in ("email", "password")}
            )
            assert (await other_device.post("/revoke-other-sessions", json={})).status_code == 200
            (failed,) = (await socket.receive(within=2.0))["modifications"]
            assert failed["type"] == "QueryFailed"
