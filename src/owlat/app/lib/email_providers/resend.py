"""Resend provider: `POST /emails` of Resend's HTTP API, with httpx.

Request: `Authorization: Bearer <api key>`, JSON `{from, to: [..], subject, text, html?,
reply_to?: [..], headers?: {..}, attachments?: [{filename, content (base64),
content_type}]}`, and the message's idempotency key as `Idempotency-Key` (Resend answers
a repeated key with the first answer for 24 hours, so a retry never sends twice; keys
longer than Resend's 256 characters are sent as their SHA-256). Answer: `{"id": ...}`.
Errors are `{"statusCode", "name", "message"}`, classified by name, then by status.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from owlat.app.lib.email_providers.types import EmailMessage, ErrorKind, ProviderError, SendResult
from owlat.app.lib.sending.composition import check_headers

_BY_NAME: dict[str, ErrorKind] = {
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT,
    "daily_quota_exceeded": ErrorKind.RATE_LIMIT,
    "monthly_quota_exceeded": ErrorKind.RATE_LIMIT,
    "concurrent_idempotent_requests": ErrorKind.RATE_LIMIT,
    "missing_api_key": ErrorKind.AUTH_FAILED,
    "invalid_api_key": ErrorKind.AUTH_FAILED,
    "restricted_api_key": ErrorKind.AUTH_FAILED,
    "invalid_access": ErrorKind.AUTH_FAILED,
    "invalid_from_address": ErrorKind.INVALID_SENDER,
    "invalid_attachment": ErrorKind.CONTENT_REJECTED,
    "security_error": ErrorKind.CONTENT_REJECTED,
    "application_error": ErrorKind.SERVER_ERROR,
    "internal_server_error": ErrorKind.SERVER_ERROR,
}


@dataclasses.dataclass(frozen=True)
class ResendSettings:
    api_key: str
    base_url: str = "https://api.resend.com"
    # Requests in flight at once.
    max_concurrency: int = 8
    # Seconds to connect, and to wait for the answer.
    timeout: float = 30.0


class ResendProvider:
    name = "resend"

    def __init__(self, settings: ResendSettings) -> None:
        self.settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.api_key}", "User-Agent": "Owlat"},
            timeout=settings.timeout,
            limits=httpx.Limits(max_connections=settings.max_concurrency),
        )

    async def send(self, message: EmailMessage) -> SendResult:
        check_headers(message)
        key = message.idempotency_key
        headers = {"Idempotency-Key": idempotency_key(key)} if key else {}
        try:
            answer = await self._http.post("/emails", json=payload(message), headers=headers)
        except httpx.TimeoutException:
            if key is None:
                text = f"no answer within {self.settings.timeout:g} s: Resend may have sent it"
                raise ProviderError(ErrorKind.UNKNOWN, text, provider=self.name) from None
            text = f"no answer within {self.settings.timeout:g} s (retry is safe: same key)"
            raise ProviderError(ErrorKind.SERVER_ERROR, text, provider=self.name) from None
        except httpx.TransportError as error:
            text = f"cannot reach Resend: {error!r}"
            raise ProviderError(ErrorKind.SERVER_ERROR, text, provider=self.name) from None
        if answer.is_success:
            return SendResult(str(answer.json()["id"]))
        raise classify(answer)

    async def check(self) -> str:
        """`GET /domains` with the key: a full-access key lists the domains, a key
        restricted to sending is refused with `restricted_api_key` (still a valid key)."""
        try:
            answer = await self._http.get("/domains")
        except httpx.TransportError as error:
            text = f"cannot reach Resend: {error!r}"
            raise ProviderError(ErrorKind.SERVER_ERROR, text, provider=self.name) from None
        if answer.is_success:
            domains = answer.json().get("data", [])
            verified = [d["name"] for d in domains if d.get("status") == "verified"]
            named = f": {', '.join(verified)}" if verified else ""
            return f"Resend accepted the key ({len(verified)} verified domains{named})"
        refusal = classify(answer)
        if "restricted_api_key" in str(refusal):
            return "Resend accepted the key (restricted to sending: domains not listed)"
        raise refusal

    async def close(self) -> None:
        await self._http.aclose()


def payload(message: EmailMessage) -> dict[str, Any]:
    """The JSON body of `POST /emails` for `message`."""
    body: dict[str, Any] = {
        "from": message.from_address,
        "to": [message.to],
        "subject": message.subject,
        "text": message.text,
    }
    if message.html is not None:
        body["html"] = message.html
    if message.reply_to is not None:
        body["reply_to"] = [message.reply_to]
    if message.headers:
        body["headers"] = dict(message.headers)
    if message.attachments:
        body["attachments"] = [
            {
                "filename": attachment.filename,
                "content": base64.b64encode(attachment.content).decode(),
                "content_type": attachment.content_type,
            }
            for attachment in message.attachments
        ]
    return body


def idempotency_key(key: str) -> str:
    return key if len(key) <= 256 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def classify(answer: httpx.Response) -> ProviderError:
    """The ProviderError of a non-2xx answer of Resend."""
    try:
        body = answer.json()
    except ValueError:
        body = {}
    name = str(body.get("name", "")) if isinstance(body, dict) else ""
    text = str(body.get("message", "")) if isinstance(body, dict) else ""
    status = answer.status_code
    kind = _BY_NAME.get(name)
    if kind is None:
        kind = _kind_of_status(status, text)
    retry_after = _retry_after(answer.headers.get("retry-after"))
    message = f"{status} {name or answer.reason_phrase}: {text or answer.text[:200]}"
    return ProviderError(kind, message, retry_after, provider="resend")


def _kind_of_status(status: int, text: str) -> ErrorKind:
    if status == 429:
        return ErrorKind.RATE_LIMIT
    if status >= 500:
        return ErrorKind.SERVER_ERROR
    if status == 401:
        return ErrorKind.AUTH_FAILED
    if status == 403:  # e.g. "The example.com domain is not verified"
        return ErrorKind.INVALID_SENDER if "domain" in text.lower() else ErrorKind.AUTH_FAILED
    if status in (400, 422):
        lowered = text.lower()
        if "`to`" in lowered or "recipient" in lowered:
            return ErrorKind.INVALID_RECIPIENT
        if "`from`" in lowered or "sender" in lowered:
            return ErrorKind.INVALID_SENDER
        return ErrorKind.CONTENT_REJECTED
    return ErrorKind.UNKNOWN


def _retry_after(value: str | None) -> float | None:
    """Seconds of a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
