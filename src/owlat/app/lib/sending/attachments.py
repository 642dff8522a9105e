"""The files a send carries: what may be attached, and loading them when it is sent.

A send's attachments (`transactionalSends.attachments`: the template's, then the request's)
are stored files of the organization (`storageId`) or https URLs (`url`). Limits (reference
§3.9, §15): at most `MAX_ATTACHMENTS`, `MAX_TOTAL_BYTES` together; a file name without
path separators or control characters, and without an extension Gmail refuses to deliver
(`BLOCKED_EXTENSIONS`: executables and scripts), so the sender hears of it at once rather
than from a bounce.

URLs are fetched by the delivery action (`load`), never while answering the request, and
only from public addresses (`fetch_url`):
1. the host name is resolved first, and every address it resolves to must be global
   unicast: private, loopback, link-local, multicast, reserved, shared (CGNAT) and
   unspecified addresses, and IPv6 forms of them (IPv4-mapped), are refused;
2. the connection goes to that checked address, with TLS still verifying the certificate
   for the host name (SNI), so a second DNS answer (rebinding) cannot send it elsewhere;
3. redirects are followed by hand, at most `MAX_REDIRECTS`, each to an https URL that is
   checked the same way; no proxy from the environment is used;
4. the body is read up to what is left of `MAX_TOTAL_BYTES`; one byte more is refused.
`FetchPolicy` holds the rule. Its `allow_loopback` and `verify` exist for tests that serve
files from an HTTPS server on 127.0.0.1: both are off unless a test sets them on the
instance (`instance.configure(..., attachment_fetch=FetchPolicy(...))`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import mimetypes
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from owlat.app.lib.email_providers.types import Attachment

MAX_ATTACHMENTS = 10
MAX_TOTAL_BYTES = 10 * 1024 * 1024  # decoded bytes of all of a send's attachments
MAX_FILENAME = 255
MAX_URL = 2000
MAX_REDIRECTS = 3
FETCH_TIMEOUT = 30.0  # seconds per request (connect, each read)
DEFAULT_TYPE = "application/octet-stream"
# Gmail's list of file types it blocks (support.google.com/mail/answer/6590).
_BLOCKED = """ade adp apk appx appxbundle bat cab chm cmd com cpl diagcab diagcfg diagpack dll
dmg ex ex_ exe hta img ins iso isp jar jnlp js jse lib lnk mde mjs msc msi msix msixbundle
msp mst nsh pif ps1 scr sct shb sys vb vbe vbs vhd vxd wsc wsf wsh xll"""
BLOCKED_EXTENSIONS = frozenset(_BLOCKED.split())
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")


class AttachmentError(Exception):
    """An attachment that cannot be sent (the text names it and says why)."""


class AddressRefused(AttachmentError):
    """A host that resolves to an address the policy refuses (not one that fails to
    resolve)."""


@dataclasses.dataclass(frozen=True)
class FetchPolicy:
    """Where attachment URLs may be fetched from (module docstring). The defaults are the
    production rule; tests set `allow_loopback` and their server's TLS trust (`verify`)."""

    allow_loopback: bool = False
    verify: ssl.SSLContext | bool = True


# -- checks ----------------------------------------------------------------------------------


def filename_problem(filename: str) -> str | None:
    """What is wrong with an attachment's file name, or None."""
    if not filename.strip() or len(filename) > MAX_FILENAME:
        return f"must be 1 to {MAX_FILENAME} characters"
    if "/" in filename or "\\" in filename:
        return "must not contain path separators"
    if _CONTROL.search(filename):
        return "must not contain control characters"
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in BLOCKED_EXTENSIONS:
        return f"has an extension mail providers refuse (.{extension})"
    return None


def content_type_problem(content_type: str) -> str | None:
    if not _CONTENT_TYPE.match(content_type) or len(content_type) > 200:
        return "must be a MIME type such as application/pdf"
    return None


def url_problem(url: str) -> str | None:
    """What is wrong with an attachment URL as written (its address is checked when it
    is fetched), or None."""
    if len(url) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "must be an HTTPS URL"
    if parsed.scheme != "https" or not parsed.host or parsed.userinfo:
        return "must be an HTTPS URL"
    return None


def content_type_for(filename: str, declared: str | None) -> str:
    """The attachment's type: the one declared, else guessed from the file name."""
    if declared:
        return declared
    return mimetypes.guess_type(filename, strict=False)[0] or DEFAULT_TYPE


# -- addresses -------------------------------------------------------------------------------


def refused_address(address: str, policy: FetchPolicy) -> str | None:
    """Why `address` may not be connected to (module docstring), or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private or ip.is_unspecified or ip.is_reserved:
        return "a private or reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def host_problem(host: str, policy: FetchPolicy) -> str | None:
    """Why `host`, as written, may not be connected to, or None: `localhost`,
    `*.localhost`, `*.local`, or an IP address `refused_address` refuses. A host name's
    addresses are checked when it is resolved (`checked_address`)."""
    host = host.lower().rstrip(".")
    local = host == "localhost" or host.endswith((".localhost", ".local"))
    if local and not policy.allow_loopback:
        return "a local host"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return refused_address(host, policy)


async def checked_address(host: str, port: int, policy: FetchPolicy) -> str:
    """The address to connect to for `host`: resolved, every answer checked."""
    return (await checked_addresses(host, port, policy))[0]


async def checked_addresses(host: str, port: int, policy: FetchPolicy) -> list[str]:
    """Every address of `host`, in the resolver's order, once each was checked."""
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise AttachmentError(f"{host} does not resolve ({error.strerror or error})") from None
    addresses = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
    if not addresses:
        raise AttachmentError(f"{host} does not resolve")
    for address in addresses:
        refusal = refused_address(address, policy)
        if refusal is not None:
            raise AddressRefused(f"{host} resolves to {refusal} ({address}): refused")
    return addresses


# -- fetching --------------------------------------------------------------------------------


async def fetch_url(url: str, budget: int, policy: FetchPolicy) -> tuple[bytes, str | None]:
    """The body of `url` (at most `budget` bytes) and its Content-Type, following the rule
    of the module docstring."""
    async with httpx.AsyncClient(
        verify=policy.verify,
        trust_env=False,
        follow_redirects=False,
        timeout=FETCH_TIMEOUT,
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            problem = url_problem(url)
            if problem is not None:
                raise AttachmentError(f"{url[:200]} {problem}")
            target = httpx.URL(url)
            address = await checked_address(target.host, target.port or 443, policy)
            request = client.build_request(
                "GET",
                target.copy_with(host=address),
                headers={"Host": target.netloc.decode("ascii")},
                extensions={"sni_hostname": target.host},
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise AttachmentError(f"{target.host}: {error}") from None
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    url = str(target.join(location))
                    continue
                if response.status_code != 200:
                    raise AttachmentError(f"{target.host} answered HTTP {response.status_code}")
                return await _body(response, budget), response.headers.get("content-type")
            finally:
                await response.aclose()
    raise AttachmentError(f"more than {MAX_REDIRECTS} redirects")


async def _body(response: httpx.Response, budget: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > budget:
                raise AttachmentError(_too_large())
            chunks.append(chunk)
    except httpx.HTTPError as error:
        raise AttachmentError(f"reading failed: {error}") from None
    return b"".join(chunks)


def _too_large() -> str:
    return f"the attachments together exceed {MAX_TOTAL_BYTES // (1024 * 1024)} MB"


def _response_type(header: str | None) -> str | None:
    value = (header or "").split(";", 1)[0].strip().lower()
    return value if value and content_type_problem(value) is None else None


async def load(
    attachments: Sequence[Mapping[str, Any]],
    read_file: Callable[[str], Awaitable[bytes | None]],
    policy: FetchPolicy,
) -> tuple[Attachment, ...]:
    """The attachments' contents: stored files read with `read_file`, URLs fetched;
    `AttachmentError` naming the first one that cannot be had."""
    loaded: list[Attachment] = []
    total = 0
    for index, item in enumerate(attachments):
        filename = item["filename"]
        try:
            if item.get("storageId") is not None:
                data = await read_file(item["storageId"])
                if data is None:
                    raise AttachmentError("the stored file is gone")
                fetched_type = None
            else:
                data, header = await fetch_url(item["url"], MAX_TOTAL_BYTES - total, policy)
                fetched_type = _response_type(header)
        except AttachmentError as error:
            raise AttachmentError(f"attachments[{index}] ({filename}): {error}") from None
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise AttachmentError(_too_large())
        content_type = item.get("contentType") or fetched_type
        loaded.append(Attachment(filename, data, content_type_for(filename, content_type)))
    return tuple(loaded)
