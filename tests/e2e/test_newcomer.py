"""A newcomer's first email, with the commands the README gives, against a real `owlat dev`:
`owlat admin create`, `owlat admin organization create`, `owlat admin api-key create`, a
`POST /api/v1/transactional` as curl sends it, and the outbox page that shows the mail;
then a real one: an SMTP sink started as the README says (`python -m aiosmtpd`), `owlat
admin smtp set` pointing the organization at it, and the same curl again."""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import os
import socket
import subprocess
import sys
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

    # A real email: an SMTP sink on loopback (under `owlat dev`, a local sink needs no
    # verified sending domain), the organization's relay pointed at it, the same request.
    async with _aiosmtpd(server.data_dir.parent / "sink.log") as (port, log):
        saved = await _owlat(
            server, "admin", "smtp", "set", "--organization", "acme",
            "--host", "127.0.0.1", "--port", str(port), "--security", "none",
        )  # fmt: skip
        assert saved.startswith(f"SMTP relay 127.0.0.1:{port} (none) saved for acme")
        bob = [*curl[:-1], curl[-1].replace("ada@", "bob@").replace("Ada", "Bob")]
        answer = await asyncio.to_thread(subprocess.run, bob, capture_output=True, check=True)
        assert b'"status":"queued"' in answer.stdout.replace(b" ", b""), answer.stdout
        async with asyncio.timeout(30):
            while "END MESSAGE" not in log.read_text():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        received = log.read_text()
        assert "To: bob@example.com" in received and "Subject: Welcome, Bob" in received
        assert received.count("MESSAGE FOLLOWS") == 1
    assert len(list(outbox.glob("*.eml"))) == 1  # the first mail only


@contextlib.asynccontextmanager
async def _aiosmtpd(log: Path) -> AsyncIterator[tuple[int, Path]]:
    """`python -m aiosmtpd -n -l 127.0.0.1:PORT` on a free port, printing what it
    receives to `log`: (its port, `log`) once it listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
            stdout=output, stderr=output, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        async with asyncio.timeout(15):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        yield port, log
    finally:
        process.terminate()
        await process.wait()


async def test_an_api_key_for_an_unknown_organization_is_refused(server: LoggedServer) -> None:
    process = await owlat(
        "admin", "api-key", "create", "--organization", "nope",
        "--url", server.url, "--data-dir", str(server.data_dir), env=ENV,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "Organization 'nope' not found" in stderr.decode()


async def _acme(server: LoggedServer) -> None:
    """A platform admin and the organization `acme` it owns, as the README makes them."""
    await _owlat(server, "admin", "create", "--email", "you@example.com", "--name", "You")
    await _owlat(
        server, "admin", "organization", "create", "--name", "Acme", "--owner", "you@example.com"
    )


async def test_an_smtp_relay_on_a_private_address_is_refused_under_owlat_dev_too(
    server: LoggedServer,
) -> None:
    await _acme(server)
    process = await owlat(
        "admin", "smtp", "set", "--organization", "acme", "--host", "192.168.1.20",
        "--url", server.url, "--data-dir", str(server.data_dir), env=ENV,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "SMTP host 192.168.1.20 is a private or reserved address" in stderr.decode()


async def test_owlat_admin_abuse_set_stops_and_restores_an_organizations_sending(
    server: LoggedServer,
) -> None:
    await _acme(server)
    key = (
        await _owlat(server, "admin", "api-key", "create", "--organization", "acme", "--quiet")
    ).strip()
    said = await _owlat(
        server, "admin", "abuse", "set", "--organization", "acme",
        "--status", "suspended", "--reason", "spam complaints",
    )  # fmt: skip
    assert said.strip() == "Abuse status of acme: suspended"
    body = {"slug": "welcome", "email": "ada@example.com"}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.site_url, headers=headers) as http:
        refused = await http.post("/api/v1/transactional", json=body)
        assert refused.status_code == 403
        assert refused.json()["error"] == {
            "category": "forbidden",
            "message": "Account suspended: sending is not allowed (spam complaints)",
            "data": {"reason": "abuse_blocked"},
        }
        await _owlat(server, "admin", "abuse", "set", "--organization", "acme", "--status", "clean")
        accepted = await http.post("/api/v1/transactional", json=body)
        assert accepted.status_code == 202, accepted.text
