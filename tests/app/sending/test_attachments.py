"""The attachment rules (lib/sending/attachments.py): which addresses a URL may lead to,
file names, and fetching that resolves first and connects to the checked address."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from owlat.app.lib.sending.attachments import (
    MAX_TOTAL_BYTES,
    AttachmentError,
    FetchPolicy,
    fetch_url,
    filename_problem,
    load,
    refused_address,
    url_problem,
)
from tests.app.sending.servers import https_server

PUBLIC = FetchPolicy()


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("10.0.0.8", "a private or reserved address"),
        ("172.16.5.4", "a private or reserved address"),
        ("192.168.1.1", "a private or reserved address"),
        ("::ffff:192.168.1.1", "a private or reserved address"),
        ("fd00::1", "a private or reserved address"),
        ("169.254.169.254", "a link-local address"),  # cloud metadata
        ("fe80::1%eth0", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "a private or reserved address"),
        ("240.0.0.1", "a private or reserved address"),
        ("100.64.0.1", "not a public address"),  # shared address space (CGNAT)
    ],
)
def test_only_global_unicast_addresses_are_allowed(address: str, refusal: str | None) -> None:
    assert refused_address(address, PUBLIC) == refusal


def test_loopback_is_allowed_only_when_a_test_says_so() -> None:
    testing = FetchPolicy(allow_loopback=True)
    assert refused_address("127.0.0.1", testing) is None
    assert refused_address("10.0.0.1", testing) == "a private or reserved address"


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("receipt.pdf", None),
        ("Rechnung März.xml", None),
        ("", "must be 1 to 255 characters"),
        ("a" * 256, "must be 1 to 255 characters"),
        ("../etc/passwd", "must not contain path separators"),
        ("a\\b.pdf", "must not contain path separators"),
        ("a\nb.pdf", "must not contain control characters"),
        ("invoice.pdf.EXE", "has an extension mail providers refuse (.exe)"),
        ("script.js", "has an extension mail providers refuse (.js)"),
    ],
)
def test_file_names(filename: str, problem: str | None) -> None:
    assert filename_problem(filename) == problem


@pytest.mark.parametrize(
    "url", ["http://example.com/a", "ftp://example.com/a", "https://", "https://u:p@x.com/a"]
)
def test_only_https_urls_without_credentials(url: str) -> None:
    assert url_problem(url) == "must be an HTTPS URL"


async def test_a_name_that_resolves_to_loopback_is_refused_before_connecting() -> None:
    with pytest.raises(AttachmentError, match=r"^localhost resolves to a loopback address"):
        await fetch_url("https://localhost:1/file.pdf", MAX_TOTAL_BYTES, PUBLIC)


def _app() -> Starlette:
    async def big(request: Request) -> Response:
        return Response(b"x" * 5000)

    async def loop(request: Request) -> Response:
        return RedirectResponse("/loop", status_code=302)

    async def plain(request: Request) -> Response:
        return RedirectResponse("http://127.0.0.1/big", status_code=302)

    async def host(request: Request) -> Response:
        return Response(request.headers["host"].encode())

    return Starlette(
        routes=[
            Route("/big", big),
            Route("/loop", loop),
            Route("/plain", plain),
            Route("/host", host),
        ]
    )


async def test_fetching_checks_size_redirects_and_keeps_the_host_name(tmp_path: Path) -> None:
    async with https_server(_app(), tmp_path) as (base, trust):
        policy = FetchPolicy(allow_loopback=True, verify=trust)
        body, _ = await fetch_url(base + "/big", 5000, policy)
        assert len(body) == 5000
        with pytest.raises(AttachmentError, match="exceed 10 MB"):
            await fetch_url(base + "/big", 4999, policy)
        with pytest.raises(AttachmentError, match="^more than 3 redirects$"):
            await fetch_url(base + "/loop", 5000, policy)
        with pytest.raises(AttachmentError, match="must be an HTTPS URL$"):
            await fetch_url(base + "/plain", 5000, policy)
        host, _ = await fetch_url(base + "/host", 5000, policy)
        assert host.decode() == base.removeprefix("https://")
        with pytest.raises(AttachmentError, match="certificate verify failed"):
            await fetch_url(base + "/big", 5000, FetchPolicy(allow_loopback=True))

        async def no_file(storage_id: str) -> bytes | None:
            return None

        with pytest.raises(AttachmentError, match=r"^attachments\[1\] \(b.pdf\): the stored"):
            await load(
                [
                    {"filename": "a.pdf", "url": base + "/big"},
                    {"filename": "b.pdf", "storageId": "s"},
                ],
                no_file,
                policy,
            )
