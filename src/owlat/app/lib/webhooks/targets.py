"""Where a webhook may be sent, and the one request that sends it.

A webhook URL is an http(s) URL of at most `MAX_URL` characters, without user info, whose
host is not `localhost`, `*.localhost` or `*.local` and, when written as an IP address,
is public (`attachments.host_problem`: private, loopback, link-local, multicast,
reserved, shared and unspecified addresses are refused) — checked when it is saved.

At delivery the host is resolved and every address it resolves to is checked again
(`attachments.checked_address`), then the request goes to that checked address (the host
in the Host header and TLS SNI, the certificate still verified for the host), so a DNS
answer that changed since (rebinding) cannot point it at an internal service. No proxy
from the environment, no redirects followed, `TIMEOUT` seconds, and at most
`MAX_RESPONSE` characters of the answer kept. `FetchPolicy.allow_loopback` (the instance's
`webhook_fetch`) exists for tests that run the receiver on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import time

import httpx

from owlat.app.lib.sending.attachments import (
    AttachmentError,
    FetchPolicy,
    checked_address,
    host_problem,
)

MAX_URL = 2000
TIMEOUT = 30.0
MAX_RESPONSE = 1000


@dataclasses.dataclass(frozen=True)
class Answer:
    """One attempt's result: a status (None: no answer) and what to log."""

    status: int | None
    body: str = ""
    error: str = ""
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def url_problem(url: str, policy: FetchPolicy) -> str | None:
    """Why `url` cannot be a webhook target (module docstring), or None."""
    if len(url) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "must be an http(s) URL"
    host = parsed.host.lower().rstrip(".")
    if parsed.scheme not in ("http", "https") or not host:
        return "must be an http(s) URL"
    if parsed.userinfo:
        return "must not contain user info"
    refusal = host_problem(host, policy)
    return None if refusal is None else f"must not point at {refusal}"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_RESPONSE else text[:MAX_RESPONSE] + "..."


async def post(url: str, body: bytes, headers: dict[str, str], policy: FetchPolicy) -> Answer:
    """POST `body` to `url` as the module docstring says; never raises for the target's
    failures (they are the answer)."""
    started = time.monotonic()

    def answer(status: int | None, text: str = "", error: str = "") -> Answer:
        return Answer(status, _clip(text), error, (time.monotonic() - started) * 1000)

    problem = url_problem(url, policy)
    if problem is not None:
        return answer(None, error=f"URL {problem}")
    target = httpx.URL(url)
    default_port = 443 if target.scheme == "https" else 80
    try:
        address = await checked_address(target.host, target.port or default_port, policy)
    except AttachmentError as error:
        return answer(None, error=str(error))
    async with httpx.AsyncClient(
        verify=policy.verify, trust_env=False, follow_redirects=False, timeout=TIMEOUT
    ) as client:
        request = client.build_request(
            "POST",
            target.copy_with(host=address),
            content=body,
            headers={**headers, "Host": target.netloc.decode("ascii")},
            extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
        )
        try:
            response = await client.send(request)
        except httpx.HTTPError as error:
            return answer(None, error=f"{type(error).__name__}: {error}"[:MAX_RESPONSE])
    return answer(response.status_code, response.text)
