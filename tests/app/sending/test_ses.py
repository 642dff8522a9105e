"""The SES provider against moto_server (SES v2 records the raw message it was sent) and
against a local endpoint answering SES's errors, slowly, or not at all."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from owlat.app.lib.email_providers.ses import SesProvider, SesSettings
from owlat.app.lib.email_providers.types import Attachment, EmailMessage, ErrorKind, ProviderError
from tests.e2e.conftest import serve_in_process
from tests.s3 import MotoServer


def ses_settings(endpoint_url: str, **options: Any) -> SesSettings:
    return SesSettings(
        region="eu-west-1",
        access_key_id="test",
        secret_access_key="test",
        endpoint_url=endpoint_url,
        **options,
    )


@pytest.fixture(scope="module")
def ses_server() -> Iterator[MotoServer]:
    """A moto_server of this module's own: moto's state dump (what SES sent, read by
    `sent_raw_messages`) answers 500 once the shared server holds other tests' S3 objects."""
    with MotoServer.running() as server:
        yield server


@pytest.fixture
def moto(ses_server: MotoServer) -> MotoServer:
    client = boto3.client(
        "sesv2",
        region_name="eu-west-1",
        endpoint_url=ses_server.endpoint_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_email_identity(EmailIdentity="verified.test")
    client.close()
    return ses_server


def sent_raw_messages(moto: MotoServer) -> list[dict[str, Any]]:
    with urllib.request.urlopen(moto.endpoint_url + "/moto-api/data.json", timeout=10) as answer:
        data = json.load(answer)
    messages: list[dict[str, Any]] = data["ses"]["RawMessage"]
    return messages


async def test_sends_the_raw_message(moto: MotoServer) -> None:
    provider = SesProvider(ses_settings(moto.endpoint_url))
    message = EmailMessage(
        to="Reader <reader@example.org>",
        subject="Report",
        text="See attached",
        html="<p>See attached</p>",
        from_address="Owlat <news@verified.test>",
        idempotency_key="send:ses:1",
        headers={"Feedback-ID": "c1:o1:transactional:owlat"},
        attachments=(Attachment("r.csv", b"a,b\n1,2\n", "text/csv"),),
    )
    try:
        result = await provider.send(message)
    finally:
        await provider.close()
    [record] = [m for m in sent_raw_messages(moto) if m["id"] == result.message_id]
    assert record["source"] == "news@verified.test"
    assert "reader@example.org" in record["destinations"][0]
    parsed = email.message_from_string(record["raw_data"], policy=email.policy.default)
    assert parsed["Subject"] == "Report"
    assert parsed["Feedback-ID"] == "c1:o1:transactional:owlat"
    assert parsed["Message-ID"].endswith("@verified.test>")
    assert [part.get_filename() for part in parsed.iter_attachments()] == ["r.csv"]


async def test_an_unverified_sender_is_refused(moto: MotoServer) -> None:
    provider = SesProvider(ses_settings(moto.endpoint_url))
    message = EmailMessage(to="r@example.org", subject="x", text="x", from_address="a@nope.test")
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.send(message)
    finally:
        await provider.close()
    assert raised.value.kind is ErrorKind.INVALID_SENDER
    assert raised.value.message.startswith("MessageRejected: ")


# -- faults ------------------------------------------------------------------------------------

ERRORS: dict[str, tuple[int, str]] = {
    "throttled": (429, "TooManyRequestsException"),
    "broken": (500, "InternalFailure"),
    "spam": (400, "MessageRejected"),
    "badkey": (403, "UnrecognizedClientException"),
    "paused": (400, "SendingPausedException"),
    "gateway": (502, ""),
}


@pytest.fixture
async def faulty_ses() -> AsyncIterator[str]:
    """SES v2's SendEmail path answering the error named by the recipient's local part."""

    async def send_email(request: Request) -> JSONResponse:
        body = await request.json()
        local = body["Destination"]["ToAddresses"][0].split("@")[0]
        if local == "slow":
            await asyncio.sleep(2)
        status, code = ERRORS.get(local, (200, ""))
        if status == 200:
            return JSONResponse({"MessageId": "ok-1"})
        headers = {"x-amzn-ErrorType": code} if code else {}
        return JSONResponse({"message": f"{code or 'gateway'} for {local}"}, status, headers)

    app = Starlette(routes=[Route("/v2/email/outbound-emails", send_email, methods=["POST"])])
    async with serve_in_process(app) as url:
        yield url


@pytest.mark.parametrize(
    ("local", "kind"),
    [
        ("throttled", ErrorKind.RATE_LIMIT),
        ("broken", ErrorKind.SERVER_ERROR),
        ("spam", ErrorKind.CONTENT_REJECTED),
        ("badkey", ErrorKind.AUTH_FAILED),
        ("paused", ErrorKind.INVALID_SENDER),
        ("gateway", ErrorKind.SERVER_ERROR),
    ],
)
async def test_errors_are_classified(faulty_ses: str, local: str, kind: ErrorKind) -> None:
    provider = SesProvider(ses_settings(faulty_ses))
    message = EmailMessage(to=f"{local}@x.org", subject="x", text="x", from_address="a@b.test")
    fine = EmailMessage(to="fine@x.org", subject="x", text="x", from_address="a@b.test")
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.send(message)
        assert (await provider.send(fine)).message_id == "ok-1"
    finally:
        await provider.close()
    assert raised.value.kind is kind
    assert raised.value.provider == "ses"


async def test_no_answer_in_time_is_unknown(faulty_ses: str) -> None:
    provider = SesProvider(ses_settings(faulty_ses, timeout=0.3))
    message = EmailMessage(to="slow@example.org", subject="x", text="x", from_address="a@b.test")
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.send(message)
    finally:
        await provider.close()
    assert raised.value.kind is ErrorKind.UNKNOWN
    assert "no answer within 0.3 s" in raised.value.message


async def test_an_unreachable_endpoint_is_a_server_error(faulty_ses: str) -> None:
    async with serve_in_process(Starlette()) as url:
        pass  # its port is free again
    provider = SesProvider(ses_settings(url, timeout=2))
    message = EmailMessage(to="r@example.org", subject="x", text="x", from_address="a@b.test")
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.send(message)
    finally:
        await provider.close()
    assert raised.value.kind is ErrorKind.SERVER_ERROR
    assert "cannot reach SES" in raised.value.message
