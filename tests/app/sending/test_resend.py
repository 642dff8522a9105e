"""The Resend provider against a local server that checks Resend's documented request
(auth header, JSON shape, Idempotency-Key) and answers its documented errors."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from owlat.app.lib.email_providers.dispatch import deliver
from owlat.app.lib.email_providers.resend import ResendProvider, ResendSettings
from owlat.app.lib.email_providers.routing import Health, Route, RouteTarget, Strategy
from owlat.app.lib.email_providers.types import Attachment, EmailMessage, ErrorKind, ProviderError
from owlat.app.lib.sending.composition import CompositionError, SendKind, kind_headers
from tests.app.sending.servers import FakeResend
from tests.e2e.conftest import serve_in_process


@pytest.fixture
async def resend() -> AsyncIterator[tuple[FakeResend, str]]:
    fake = FakeResend()
    async with serve_in_process(fake.app()) as url:
        yield fake, url


def provider(url: str, **options: Any) -> ResendProvider:
    return ResendProvider(
        ResendSettings(api_key=options.pop("api_key", "re_test_key"), base_url=url, **options)
    )


def message(to: str = "reader@example.org", **fields: Any) -> EmailMessage:
    values: dict[str, Any] = {
        "subject": "Welcome",
        "text": "Hello",
        "from_address": "Owlat <hi@sender.test>",
        "idempotency_key": f"send:{to}",
        **fields,
    }
    return EmailMessage(to=to, **values)


async def test_sends_the_documented_request(resend: tuple[FakeResend, str]) -> None:
    fake, url = resend
    sender = provider(url)
    headers = kind_headers(SendKind.AUTOMATION, unsubscribe_url="https://s.test/unsub/t")
    try:
        result = await sender.send(
            message(
                html="<p>Hello</p>",
                reply_to="help@sender.test",
                headers=headers,
                attachments=(Attachment("a.txt", b"attached", "text/plain"),),
            )
        )
    finally:
        await sender.close()
    [sent] = fake.sent
    assert result.message_id == sent["id"]
    assert sent == {
        "from": "Owlat <hi@sender.test>",
        "to": ["reader@example.org"],
        "subject": "Welcome",
        "text": "Hello",
        "html": "<p>Hello</p>",
        "reply_to": ["help@sender.test"],
        "headers": headers,
        "attachments": [
            {
                "filename": "a.txt",
                "content": base64.b64encode(b"attached").decode(),
                "content_type": "text/plain",
            }
        ],
        "id": sent["id"],
        "idempotency_key": "send:reader@example.org",
    }


async def test_a_repeated_idempotency_key_sends_once(resend: tuple[FakeResend, str]) -> None:
    fake, url = resend
    sender = provider(url)
    long_key = "k" * 300
    try:
        first = await sender.send(message())
        again = await sender.send(message())
        hashed = await sender.send(message("other@example.org", idempotency_key=long_key))
    finally:
        await sender.close()
    assert first == again
    assert len(fake.sent) == 2
    assert fake.sent[1]["idempotency_key"].startswith("sha256:")
    assert hashed.message_id == fake.sent[1]["id"]


async def test_a_timeout_with_a_key_is_retried_without_a_second_email(
    resend: tuple[FakeResend, str],
) -> None:
    fake, url = resend
    fake.answers = {"reader@example.org": ["SLOW"]}
    fake.slow = 1.0
    sender = provider(url, timeout=0.3)
    route = Route(Strategy.SINGLE, (RouteTarget("resend"),))

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(1.0)  # the slow first request completes meanwhile

    try:
        delivery = await deliver(message(), route, {"resend": sender}, Health(), sleep=sleep)
        fake.answers = {"reader@example.org": ["SLOW"]}
        with pytest.raises(ProviderError) as unkeyed:
            await sender.send(message(idempotency_key=None))
    finally:
        await sender.close()
    assert delivery.attempts == 2
    [keyed] = [sent for sent in fake.sent if sent["idempotency_key"] is not None]
    assert keyed["id"] == delivery.result.message_id
    assert unkeyed.value.kind is ErrorKind.UNKNOWN


@pytest.mark.parametrize(
    ("answer", "kind", "retry_after"),
    [
        (
            (
                429,
                {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests"},
                {"retry-after": "2"},
            ),
            ErrorKind.RATE_LIMIT,
            2.0,
        ),
        (
            (429, {"statusCode": 429, "name": "daily_quota_exceeded", "message": "Quota"}, {}),
            ErrorKind.RATE_LIMIT,
            None,
        ),
        (
            (500, {"statusCode": 500, "name": "application_error", "message": "Oops"}, {}),
            ErrorKind.SERVER_ERROR,
            None,
        ),
        ((503, "upstream down", {}), ErrorKind.SERVER_ERROR, None),
        (
            (
                422,
                {"statusCode": 422, "name": "invalid_from_address", "message": "Invalid from"},
                {},
            ),
            ErrorKind.INVALID_SENDER,
            None,
        ),
        (
            (
                422,
                {
                    "statusCode": 422,
                    "name": "validation_error",
                    "message": "Invalid `to` field. The email address needs to follow the format",
                },
                {},
            ),
            ErrorKind.INVALID_RECIPIENT,
            None,
        ),
        (
            (422, {"statusCode": 422, "name": "invalid_attachment", "message": "Bad file"}, {}),
            ErrorKind.CONTENT_REJECTED,
            None,
        ),
        (
            (
                403,
                {
                    "statusCode": 403,
                    "name": "validation_error",
                    "message": "The sender.test domain is not verified",
                },
                {},
            ),
            ErrorKind.INVALID_SENDER,
            None,
        ),
        (
            (
                409,
                {"statusCode": 409, "name": "invalid_idempotent_request", "message": "Same key"},
                {},
            ),
            ErrorKind.UNKNOWN,
            None,
        ),
    ],
)
async def test_errors_are_classified(
    resend: tuple[FakeResend, str], answer: Any, kind: ErrorKind, retry_after: float | None
) -> None:
    fake, url = resend
    fake.answers = {"bad@example.org": [answer]}
    sender = provider(url)
    try:
        with pytest.raises(ProviderError) as raised:
            await sender.send(message("bad@example.org"))
    finally:
        await sender.close()
    assert raised.value.kind is kind
    assert raised.value.retry_after == retry_after
    assert raised.value.message.startswith(str(answer[0]))
    assert fake.sent == []


async def test_a_wrong_api_key_is_auth_failed(resend: tuple[FakeResend, str]) -> None:
    _, url = resend
    sender = provider(url, api_key="re_wrong")
    try:
        with pytest.raises(ProviderError) as raised:
            await sender.send(message())
    finally:
        await sender.close()
    assert raised.value.kind is ErrorKind.AUTH_FAILED
    assert raised.value.message == "403 invalid_api_key: API key is invalid"


async def test_header_injection_is_refused_before_any_request(
    resend: tuple[FakeResend, str],
) -> None:
    fake, url = resend
    sender = provider(url)
    try:
        with pytest.raises(CompositionError, match="line break"):
            await sender.send(message(subject="Hi\r\nBcc: victim@example.org"))
        with pytest.raises(CompositionError, match="line break"):
            await sender.send(message(headers={"X-Campaign": "a\nBcc: victim@example.org"}))
    finally:
        await sender.close()
    assert fake.requests == 0
