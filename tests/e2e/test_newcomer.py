"""A newcomer's first email, with the commands the README gives, against a real `owlat dev`:
`owlat admin create`, `owlat admin organization create`, `owlat admin api-key create`, a
`POST /api/v1/transactional` as curl sends it, and the outbox page that shows the mail."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import LoggedServer, owlat

pytestmark = pytest.mark.timeout(120)

ENV = {"OWLAT_APP": "owlat.app", "OWLAT_ADMIN_PASSWORD": "a long enough passphrase 7"}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LoggedServer]:
    process = LoggedServer(tmp_path / "data", env={"OWLAT_APP": "owlat.app"})
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def _owlat(server: LoggedServer, *args: str) -> str:
    """`owlat <args>` on the server's data folder (and URL, for the remote commands); its
    output, after checking it succeeded."""
    where = ["--data-dir", str(server.data_dir)]
    if args[:2] != ("admin", "create"):
        where += ["--url", server.url]
    process = await owlat(*args, *where, env=ENV)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (args, stdout, stderr)
    return stdout.decode()


async def test_the_readme_commands_send_a_first_email_to_the_outbox(
    server: LoggedServer,
) -> None:
    await _owlat(server, "admin", "create", "--email", "you@example.com", "--name", "You")
    made = await _owlat(
        server, "admin", "organization", "create", "--name", "Acme", "--owner", "you@example.com"
    )
    assert made.startswith("Organization acme (")
    key = (
        await _owlat(server, "admin", "api-key", "create", "--organization", "acme", "--quiet")
    ).strip()
    assert key.startswith("lm_live_")
    curl = [
        "curl", "-sS", "-X", "POST", f"{server.site_url}/api/v1/transactional",
        "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
        "-d", '{"slug": "welcome", "email": "ada@example.com", "dataVariables": {"name": "Ada"}}',
    ]  # fmt: skip
    answer = await asyncio.to_thread(subprocess.run, curl, capture_output=True, check=True)
    assert b'"status":"queued"' in answer.stdout.replace(b" ", b""), answer.stdout
    outbox = server.data_dir / "outbox"
    async with asyncio.timeout(30):
        while not list(outbox.glob("*.eml")):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    (path,) = outbox.glob("*.eml")
    mail = email.parser.BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
    assert (mail["To"], mail["Subject"]) == ("ada@example.com", "Welcome, Ada")
    async with httpx.AsyncClient(base_url=server.site_url) as http:
        page = await http.get("/dev/outbox")
    assert page.status_code == 200 and "Welcome, Ada" in page.text


async def test_an_api_key_for_an_unknown_organization_is_refused(server: LoggedServer) -> None:
    process = await owlat(
        "admin", "api-key", "create", "--organization", "nope",
        "--url", server.url, "--data-dir", str(server.data_dir), env=ENV,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "Organization 'nope' not found" in stderr.decode()
