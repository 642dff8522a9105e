"""`owlat contacts import|export` against a real `owlat dev` process serving owlat.app."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from owlat.app.lib.csv_import import BOM
from tests.e2e.processes import LoggedServer, finished, owlat

IMPORT_LIMIT = 400_000  # bytes (OWLAT_IMPORT_MAX_BYTES of these tests' server)


class Server:
    def __init__(self, process: LoggedServer) -> None:
        self.process = process
        self.url = process.url
        self.data_dir = process.data_dir
        self.log = process.log  # the server's output (uvicorn's access log among it)
        self.key = (self.data_dir / "admin_key").read_text().strip()

    async def call(self, path: str, args: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(base_url=self.url) as http:
            reply = await http.post(
                "/api/function",
                json={"path": path, "args": args, "format": "json"},
                headers={"authorization": f"Convex {self.key}"},
            )
        body = reply.json()
        assert body["status"] == "success", body
        return body["value"]

    async def cli(self, *args: str) -> tuple[int, str, str]:
        return await finished(
            "contacts", *args, "--url", self.url, "--data-dir", str(self.data_dir)
        )

    async def log_shows(self, text: str, after: int) -> int:
        """Wait until the server's log shows `text` past its first `after` bytes; where."""
        async with asyncio.timeout(30):
            while (found := self.log.read_bytes().find(text.encode(), after)) < 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return found


@contextlib.asynccontextmanager
async def running(data_dir: Path) -> AsyncIterator[Server]:
    """`owlat dev` serving owlat.app, with the organization Acme (slug acme)."""
    env = {"OWLAT_APP": "owlat.app", "OWLAT_IMPORT_MAX_BYTES": str(IMPORT_LIMIT)}
    process = LoggedServer(data_dir, env=env)
    await process.start()
    try:
        started = Server(process)
        user = await started.call(
            "auth:createUser",
            {"email": "owner@acme.example", "name": "Owner", "passwordHash": "x"},
        )
        session = await started.call(
            "auth:createSession", {"userId": user["userId"], "tokenHash": "hash"}
        )
        await started.call(
            "organizations:createViaSession",
            {"name": "Acme", "slug": "acme", "sessionId": session["_id"]},
        )
        yield started
    finally:
        await process.stop()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    """A server of the test's own: for tests that import contacts or restart it."""
    async with running(tmp_path / "data") as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refusing_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    """One server for the module's tests whose imports are refused (no contact is added, so
    none of them sees another's): a server's start and set-up take seconds."""
    async with running(tmp_path_factory.mktemp("refusing") / "data") as started:
        yield started


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_import_shows_progress_and_errors_then_export_round_trips(
    server: Server, tmp_path: Path
) -> None:
    rows = b"".join(b"person%d@example.com,P%d,Last %d\r\n" % (i, i, i) for i in range(3000))
    data = (
        BOM
        + b"E-Mail,First Name,Last Name,Comment\r\n"
        + b'ada@example.com,Ada,"Love\nlace",hi\r\n'
        + b"not-an-email,X,,\r\n"
        + b"ADA@example.com,Again,,\r\n"
        + rows
    )
    source = _write(tmp_path / "people.csv", data)
    status, out, err = await server.cli("import", str(source), "--org", "acme")
    assert status == 3, err  # finished with a row error
    assert out.strip().startswith("completed: 3003 rows, 3001 imported, 0 updated, 1 skipped")
    assert "100% 3,003/3,003 rows" in err  # the progress bar's last state
    assert "row 2, column E-Mail: Invalid email address: 'not-an-email'" in err

    again = _write(tmp_path / "again.csv", b"email,first_name\nada@example.com,Adele\n")
    status, out, err = await server.cli(
        "import", str(again), "--org", "acme", "--on-duplicate", "update"
    )
    assert status == 0, err
    assert "1 updated" in out

    exported = tmp_path / "out.csv"
    status, _, err = await server.cli("export", "--org", "acme", "-o", str(exported))
    assert status == 0, err
    assert "Exported 3001 contacts" in err
    with exported.open(newline="", encoding="utf-8") as file:
        table = list(csv.DictReader(file))
    by_email = {row["email"]: row for row in table}
    assert len(by_email) == len(table) == 3001
    assert by_email["ada@example.com"]["firstName"] == "Adele"
    assert by_email["ada@example.com"]["lastName"] == "Love\nlace"
    assert by_email["person7@example.com"]["source"] == "import"
    assert by_email["person7@example.com"]["createdAt"].endswith("Z")
    # the export imports back: every row is a duplicate now
    status, out, err = await server.cli("import", str(exported), "--org", "acme")
    assert status == 0, err
    assert "0 imported, 0 updated, 3001 skipped, 0 failed" in out


async def test_the_import_is_followed_through_a_subscription(
    server: Server, tmp_path: Path
) -> None:
    """Once the import has started, the CLI calls no function over HTTP: it subscribes to
    `contactImports:progress` on the sync socket and the server pushes each state (a polling
    CLI would call the query over HTTP until the import ended)."""
    source = _write(
        tmp_path / "many.csv",
        b"Email\n" + b"".join(b"many%d@example.com\n" % i for i in range(2500)),
    )
    logged = server.log.stat().st_size
    status, out, err = await server.cli("import", str(source), "--org", "acme")
    assert status == 0, err
    assert out.startswith("completed: 2500 rows, 2500 imported"), out
    log = server.log.read_bytes()[logged:].decode()
    # organizationOf, uploadUrlForOrganization, startForOrganization; then the socket
    assert log.count('"POST /api/function HTTP/1.1" 200') == 3, log
    assert re.search(r'"WebSocket /api/([\w.]+/)?sync" \[accepted\]', log), log


async def test_following_survives_a_server_restart(server: Server, tmp_path: Path) -> None:
    """Killed while the CLI follows an import, the server restarts on its port and resumes
    the import; the subscription reconnects and the CLI reports the import completed (a
    polling CLI failed at its next poll: the server could not be reached)."""
    source = _write(
        tmp_path / "restart.csv",
        b"Email\n" + b"".join(b"restart%d@example.com\n" % i for i in range(10_000)),
    )
    logged = server.log.stat().st_size
    cli = asyncio.create_task(server.cli("import", str(source), "--org", "acme"))
    uploaded = await server.log_shows('"POST /api/storage/upload', logged)
    await server.log_shows('"POST /api/function HTTP/1.1" 200', uploaded)  # started
    await server.process.kill()
    await server.process.start(port=int(server.url.rsplit(":", 1)[1]))
    status, out, err = await cli
    assert status == 0, err
    assert out.startswith("completed: 10000 rows, 10000 imported, 0 updated, 0 skipped"), out
    assert "100% 10,000/10,000 rows" in err


async def test_ctrl_c_stops_following_not_the_import(server: Server, tmp_path: Path) -> None:
    """Ctrl-C ends the CLI with status 130, naming the import, which completes anyway."""
    source = _write(
        tmp_path / "long.csv",
        b"Email\n" + b"".join(b"long%d@example.com\n" % i for i in range(10_000)),
    )
    logged = server.log.stat().st_size
    cli = await owlat(
        "contacts", "import", str(source), "--org", "acme",
        "--url", server.url, "--data-dir", str(server.data_dir),
    )  # fmt: skip
    await server.log_shows('sync" [accepted]', logged)  # following
    cli.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(cli.communicate(), 30)
    assert cli.returncode == 130, err
    match = re.search(rb"stopped following import (\w+); it keeps running on the server", err)
    assert match, err
    async with asyncio.timeout(30):
        while True:
            state = await server.call(
                "contactImports:progress", {"importId": match[1].decode(), "errorLimit": 0}
            )
            if state["status"] not in ("queued", "running"):
                break
            await asyncio.sleep(0.1)
    assert (state["status"], state["imported"]) == ("completed", 10_000)


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--org", "nope"], 2, "error: unknown organization 'nope' (give its slug or id)"),
        (["--org", "acme", "--map", "no-equals"], 2, "error: --map takes COLUMN=FIELD"),
        (["--org", "acme", "--map", "Phone=email"], 2, "error: --map 'Phone=email': the file"),
        (["--org", "acme", "--map", "Email=phone"], 1, "error: Column \"Email\" maps to 'phone'"),
        (
            ["--org", "acme", "--map", "Email=property:plan"],
            1,
            'error: Column "Email" maps to unknown property "plan"',
        ),
    ],
)
async def test_bad_arguments_are_refused_with_a_reason(
    refusing_server: Server, tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    source = _write(tmp_path / "one.csv", b"Email\na@example.com\n")
    code, out, err = await refusing_server.cli("import", str(source), *args)
    assert code == status and out == ""
    assert err.startswith(message), err


async def test_unreadable_file(refusing_server: Server, tmp_path: Path) -> None:
    code, _, err = await refusing_server.cli(
        "import", str(tmp_path / "missing.csv"), "--org", "acme"
    )
    assert code == 2
    assert err.startswith("error: cannot read ") and "No such file or directory" in err


async def test_an_import_file_over_the_limit_is_refused(
    refusing_server: Server, tmp_path: Path
) -> None:
    """The CLI refuses it before uploading; a client posting it anyway to an import upload
    URL gets a 413 and nothing is stored."""
    data = b"Email\n" + b"".join(b"person%d@example.com\n" % i for i in range(20_000))
    assert len(data) > IMPORT_LIMIT
    source = _write(tmp_path / "big.csv", data)
    code, out, err = await refusing_server.cli("import", str(source), "--org", "acme")
    assert (code, out) == (2, "")
    assert err.strip() == (
        f"error: {source} is {len(data):,} bytes; the server takes import files of at most "
        f"{IMPORT_LIMIT:,} bytes (OWLAT_IMPORT_MAX_BYTES)"
    )
    organization = await refusing_server.call(
        "contactImports:organizationOf", {"organization": "acme"}
    )
    upload = await refusing_server.call(
        "contactImports:uploadUrlForOrganization",
        {"organizationId": organization["organizationId"]},
    )
    async with httpx.AsyncClient() as http:
        refused = await http.post(upload["uploadUrl"], content=data)
        assert refused.status_code == 413, refused.text
        accepted = await http.post(upload["uploadUrl"], content=data[:IMPORT_LIMIT])
        assert accepted.status_code == 200, accepted.text


async def test_export_escapes_formulas_and_imports_back(server: Server, tmp_path: Path) -> None:
    source = _write(
        tmp_path / "formulas.csv",
        b"email,first_name,last_name\n"
        b'evil@example.com,"=HYPERLINK(""http://evil.example"",""x"")",@SUM(A1)\n'
        b"plus@example.com,+1+1,-2+3\n",
    )
    status, _, err = await server.cli("import", str(source), "--org", "acme")
    assert status == 0, err
    exported = tmp_path / "out.csv"
    status, _, err = await server.cli("export", "--org", "acme", "-o", str(exported))
    assert status == 0, err
    text = exported.read_text(encoding="utf-8")
    assert '"\'=HYPERLINK(""http://evil.example"",""x"")",\'@SUM(A1),' in text
    assert "plus@example.com,'+1+1,'-2+3," in text
    status, out, err = await server.cli(
        "import", str(exported), "--org", "acme", "--on-duplicate", "update"
    )
    assert status == 0, err
    assert "0 imported, 0 updated, 2 skipped, 0 failed" in out
