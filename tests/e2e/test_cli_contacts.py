"""`owlat contacts import|export` against a real `owlat dev` process serving owlat.app."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from owlat.app.lib.csv_import import BOM
from tests.e2e.processes import finished, started_with_site

IMPORT_LIMIT = 400_000  # bytes (OWLAT_IMPORT_MAX_BYTES of these tests' server)


class Server:
    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.key = (data_dir / "admin_key").read_text().strip()

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


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    data_dir = tmp_path / "data"
    env = {"OWLAT_APP": "owlat.app", "OWLAT_IMPORT_MAX_BYTES": str(IMPORT_LIMIT)}
    process, url, _ = await started_with_site("dev", data_dir, env=env)
    try:
        running = Server(url, data_dir)
        user = await running.call(
            "auth:createUser",
            {"email": "owner@acme.example", "name": "Owner", "passwordHash": "x"},
        )
        session = await running.call(
            "auth:createSession", {"userId": user["userId"], "tokenHash": "hash"}
        )
        await running.call(
            "organizations:createViaSession",
            {"name": "Acme", "slug": "acme", "sessionId": session["_id"]},
        )
        yield running
    finally:
        process.terminate()
        async with asyncio.timeout(30):
            await process.wait()


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
    assert "\r[" in err and "100% 3,003/3,003 rows" in err
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
    server: Server, tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    source = _write(tmp_path / "one.csv", b"Email\na@example.com\n")
    code, out, err = await server.cli("import", str(source), *args)
    assert code == status and out == ""
    assert err.startswith(message), err


async def test_unreadable_file(server: Server, tmp_path: Path) -> None:
    code, _, err = await server.cli("import", str(tmp_path / "missing.csv"), "--org", "acme")
    assert code == 2
    assert err.startswith("error: cannot read ") and "No such file or directory" in err


async def test_an_import_file_over_the_limit_is_refused(server: Server, tmp_path: Path) -> None:
    """The CLI refuses it before uploading; a client posting it anyway to an import upload
    URL gets a 413 and nothing is stored."""
    data = b"Email\n" + b"".join(b"person%d@example.com\n" % i for i in range(20_000))
    assert len(data) > IMPORT_LIMIT
    source = _write(tmp_path / "big.csv", data)
    code, out, err = await server.cli("import", str(source), "--org", "acme")
    assert (code, out) == (2, "")
    assert err.strip() == (
        f"error: {source} is {len(data):,} bytes; the server takes import files of at most "
        f"{IMPORT_LIMIT:,} bytes (OWLAT_IMPORT_MAX_BYTES)"
    )
    organization = await server.call("contactImports:organizationOf", {"organization": "acme"})
    upload = await server.call(
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
