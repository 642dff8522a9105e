"""`owlat dev` with nothing configured sends to the local outbox and shows it at
/dev/outbox on the site port; `owlat serve` has no such page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.e2e.processes import started_with_site

ENV = {"OWLAT_APP": "owlat.app", "OWLAT_AUTH_ISSUERS": ""}


async def test_a_test_send_of_owlat_dev_lands_in_the_outbox_page(tmp_path: Path) -> None:
    process, url, site = await started_with_site("dev", tmp_path, env=ENV)
    try:
        async with httpx.AsyncClient(base_url=site, headers={"origin": site}) as browser:
            signed_up = await browser.post(
                "/api/auth/sign-up/email",
                json={"email": "dev@example.com", "password": "dev-password", "name": "Dev"},
            )
            assert signed_up.status_code == 200, signed_up.text
            created = await browser.post(
                "/api/auth/organization/create", json={"name": "Dev", "slug": "dev"}
            )
            assert created.status_code == 200, created.text
            token = (await browser.get("/api/auth/token")).json()["token"]
        async with httpx.AsyncClient(base_url=url) as api:
            sent = await api.post(
                "/api/mutation",
                json={
                    "path": "emails:sendTest",
                    "args": {"to": "me@example.com", "subject": "From dev", "html": "<p>Hi</p>"},
                    "format": "json",
                },
                headers={"authorization": f"Bearer {token}"},
            )
            assert sent.json()["status"] == "success", sent.text
        async with httpx.AsyncClient(base_url=site) as http, asyncio.timeout(30):
            while True:
                listing = (await http.get("/dev/outbox")).text
                if "[TEST] From dev" in listing:
                    break
                await asyncio.sleep(0.05)
        assert listing.count("<tr><td>") == 1
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def test_owlat_serve_has_no_outbox_page(tmp_path: Path) -> None:
    process, _, site = await started_with_site("serve", tmp_path, env=ENV)
    try:
        async with httpx.AsyncClient(base_url=site) as http:
            assert (await http.get("/dev/outbox")).status_code == 404
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
