"""The SMTP provider against aiosmtpd servers: a pool of persistent connections,
STARTTLS/TLS and AUTH, DKIM, classified refusals, dropped connections and timeouts, and
delivery through `dispatch.deliver` with exactly-once results under faults."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from collections.abc import AsyncIterator
from pathlib import Path

import dkim
import pytest
import uvloop

from owlat.app.lib.email_providers import smtp
from owlat.app.lib.email_providers.dispatch import deliver
from owlat.app.lib.email_providers.routing import Health, Route, RouteTarget, Strategy
from owlat.app.lib.email_providers.smtp import SmtpProvider, SmtpSettings, classify_reply
from owlat.app.lib.email_providers.types import EmailMessage, ErrorKind, ProviderError
from owlat.app.lib.sending.attachments import FetchPolicy
from owlat.app.lib.sending.composition import prepare
from owlat.app.lib.sending.dkim import DkimSigner, generate_key_pair
from tests.app.sending.servers import Sink, self_signed, smtp_server

FROM = "Owlat Tests <news@sender.test>"


def message(to: str, key: str | None = None) -> EmailMessage:
    return EmailMessage(
        to=to,
        subject=f"Hello {to}",
        text=f"Hi {to}",
        html=f"<p>Hi {to}</p>",
        from_address=FROM,
        idempotency_key=key or f"send:{to}",
    )


def plain(port: int, **options: object) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, security="none", **options)  # type: ignore[arg-type]


@pytest.fixture(params=[True, False], ids=["pipelining", "lockstep"])
async def sink(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Sink, int]]:
    """A relay that offers PIPELINING, and one that does not."""
    served = Sink(pipelining=request.param)
    async with smtp_server(served) as port:
        yield served, port


async def test_a_pool_of_persistent_connections_carries_many_messages(
    sink: tuple[Sink, int],
) -> None:
    served, port = sink
    provider = SmtpProvider(plain(port, max_connections=3))
    try:
        recipients = [f"r{i}@example.org" for i in range(30)]
        results = await asyncio.gather(*(provider.send(message(to)) for to in recipients))
    finally:
        await provider.close()
    assert sorted(served.recipients()) == sorted(recipients)
    assert served.connections == 3
    envelope = next(e for e in served.received if e.rcpt_tos == ["r7@example.org"])
    assert envelope.mail_from == "news@sender.test"
    parsed = email.message_from_bytes(envelope.original_content or b"", policy=email.policy.SMTP)
    assert parsed["Subject"] == "Hello r7@example.org"
    assert parsed["Message-ID"] == f"<{results[7].message_id}>"


async def test_messages_are_signed_with_the_key_of_their_from_domain(
    sink: tuple[Sink, int],
) -> None:
    served, port = sink
    pair = generate_key_pair()
    signer = DkimSigner("sender.test", "owlat1", pair.private_key_pem)
    provider = SmtpProvider(plain(port), dkim={"SENDER.test": signer})
    try:
        await provider.send(message("a@example.org"))
        await provider.send(
            EmailMessage(to="b@example.org", subject="x", text="x", from_address="o@other.test")
        )
    finally:
        await provider.close()
    signed, unsigned = (e.original_content or b"" for e in served.received)

    def dns(name: bytes, timeout: float = 5) -> bytes:
        assert name == b"owlat1._domainkey.sender.test."
        return pair.dns_value.encode()

    assert signed.startswith(b"DKIM-Signature:")
    assert dkim.verify(signed, dnsfunc=dns)
    assert b"DKIM-Signature" not in unsigned


async def test_prepared_messages_go_out_byte_for_byte(sink: tuple[Sink, int]) -> None:
    served, port = sink
    prepared = prepare(message("a@example.org"), now=1_700_000_000)
    provider = SmtpProvider(plain(port))
    try:
        result = await provider.send(prepared)
    finally:
        await provider.close()
    assert result.message_id == prepared.message_id
    assert served.received[0].original_content == prepared.raw


async def test_content_goes_out_with_crlf_lines_and_its_periods_kept(
    sink: tuple[Sink, int],
) -> None:
    """DATA carries CRLF lines only (a bare CR or LF is a line break of its own) and doubles
    each line's leading period, the first line's included; the relay undoes the doubling."""
    served, port = sink
    prepared = prepare(message("a@example.org"), now=1_700_000_000)
    raw = b".first\r\nSubject: x\r\n\r\n.a\n.b\r.c\r\r\n..d\r\n.\r\nend."
    provider = SmtpProvider(plain(port))
    try:
        await provider.send(dataclasses.replace(prepared, raw=raw))
    finally:
        await provider.close()
    arrived = b".first\r\nSubject: x\r\n\r\n.a\r\n.b\r\n.c\r\n\r\n..d\r\n.\r\nend.\r\n"
    assert served.received[0].original_content == arrived


@pytest.mark.parametrize(
    ("fault", "kind", "text"),
    [
        ("RCPT 550 5.1.1 No such user", ErrorKind.INVALID_RECIPIENT, "RCPT: 550 5.1.1"),
        ("RCPT 421 4.7.0 Try again later", ErrorKind.RATE_LIMIT, "RCPT: 421"),
        ("RCPT 421 4.3.2 System shutting down", ErrorKind.SERVER_ERROR, "RCPT: 421"),
        ("RCPT 451 4.3.0 Local error", ErrorKind.SERVER_ERROR, "RCPT: 451"),
        ("RCPT 452 4.5.3 Too many recipients", ErrorKind.RATE_LIMIT, "RCPT: 452"),
        ("DATA 454 4.7.0 Temporary authentication failure", ErrorKind.SERVER_ERROR, "DATA: 454"),
        ("DATA 554 5.7.1 Message rejected as spam", ErrorKind.CONTENT_REJECTED, "DATA: 554"),
        ("DROP", ErrorKind.SERVER_ERROR, "DATA: connection lost during DATA"),
    ],
)
async def test_refusals_and_drops_are_classified_and_the_pool_recovers(
    sink: tuple[Sink, int], fault: str, kind: ErrorKind, text: str
) -> None:
    served, port = sink
    served.faults = {"bad@example.org": [fault]}
    provider = SmtpProvider(plain(port, max_connections=1))
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.send(message("bad@example.org"))
        await provider.send(message("good@example.org"))
    finally:
        await provider.close()
    assert raised.value.kind is kind
    assert raised.value.provider == "smtp"
    assert raised.value.message.startswith(text)
    assert served.recipients() == ["good@example.org"]


async def test_pipelined_replies_are_matched_to_their_own_commands(
    sink: tuple[Sink, int],
) -> None:
    """Where the relay offers PIPELINING, MAIL, RCPT and DATA go in one write; each reply
    is still read as its own command's: a refused RCPT is the recipient's refusal (not
    the 503 the relay then answers to DATA), and that 503 is read before the next message
    on the same connection, whose replies are its own."""
    served, port = sink
    recipients = [f"r{i}@example.org" for i in range(6)]
    served.faults = {
        "r1@example.org": ["RCPT 550 5.1.1 No such user"],
        "r3@example.org": ["DATA 554 5.7.1 Rejected"],
        "r4@example.org": ["RCPT 452 4.5.3 Too many recipients"],
    }
    provider = SmtpProvider(plain(port, max_connections=1))
    outcomes: list[str] = []
    try:
        for to in recipients:
            try:
                await provider.send(message(to))
                outcomes.append("sent")
            except ProviderError as error:
                outcomes.append(f"{error.kind.name} {error.message[:8]}")
    finally:
        await provider.close()
    assert outcomes == [
        "sent", "INVALID_RECIPIENT RCPT: 55", "sent", "CONTENT_REJECTED DATA: 55",
        "RATE_LIMIT RCPT: 45", "sent",
    ]  # fmt: skip
    assert served.recipients() == ["r0@example.org", "r2@example.org", "r5@example.org"]
    assert served.connections == 1
    together = [read for read in served.reads if b"MAIL FROM:" in read]
    assert len(together) == len(recipients)
    assert all((b"DATA\r\n" in read) is served.pipelining for read in together)


def test_the_pool_runs_on_uvloop() -> None:
    """`owlat dev` serves on uvloop, whose transports are no `asyncio.WriteTransport`."""

    async def send() -> list[str]:
        served = Sink()
        async with smtp_server(served) as port:
            provider = SmtpProvider(plain(port, max_connections=2))
            try:
                await asyncio.gather(
                    *(provider.send(message(f"u{i}@example.org")) for i in range(4))
                )
            finally:
                await provider.close()
        return sorted(served.recipients())

    assert uvloop.run(send()) == [f"u{i}@example.org" for i in range(4)]


async def test_no_answer_to_data_is_unknown_and_never_retried(sink: tuple[Sink, int]) -> None:
    served, port = sink
    served.faults = {"slow@example.org": ["STALL"]}
    served.stall = 1.0
    provider = SmtpProvider(plain(port, timeout=0.3))
    route = Route(Strategy.SINGLE, (RouteTarget("smtp"),))
    try:
        with pytest.raises(ProviderError) as raised:
            await deliver(
                message("slow@example.org"), route, {"smtp": provider}, Health(), sleep=_no_sleep
            )
    finally:
        await provider.close()
    assert raised.value.kind is ErrorKind.UNKNOWN
    assert "no answer to DATA within 0.3 s" in raised.value.message
    assert served.connections == 1  # no second attempt
    assert served.faults == {"slow@example.org": []}


async def test_a_message_is_attempted_only_once_a_connection_takes_it(
    sink: tuple[Sink, int],
) -> None:
    """`on_attempt` (the attempt journal) runs right before MAIL on the connection that
    carries the message, and right before the write that ends its DATA: while 2
    connections wait for the answer to the end of DATA, the 4 messages queued behind
    them are not attempted."""
    served, port = sink
    served.faults = {"slow0@example.org": ["STALL"], "slow1@example.org": ["STALL"]}
    served.stall = 1.0
    provider = SmtpProvider(plain(port, max_connections=2))
    attempted: list[tuple[str, str]] = []
    recipients = [f"slow{i}@example.org" for i in range(2)] + [f"r{i}@example.org" for i in "abcd"]
    sent = [
        dataclasses.replace(
            message(to), on_attempt=lambda stage, to=to: attempted.append((to, stage))
        )
        for to in recipients
    ]
    try:
        sending = asyncio.gather(*(provider.send(m) for m in sent))
        async with asyncio.timeout(5):
            while len(attempted) < 4:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert sorted(attempted) == [
            (to, stage) for to in recipients[:2] for stage in ("end", "mail")
        ]
        assert len(served.received) == 0
        await sending
    finally:
        await provider.close()
    assert sorted(attempted) == sorted(
        (to, stage) for to in recipients for stage in ("mail", "end")
    )
    assert len(served.received) == 6


async def test_a_transaction_refused_before_its_content_never_reaches_its_end(
    sink: tuple[Sink, int],
) -> None:
    """A recipient refused at RCPT: the content is never written, so `on_attempt` is
    called for "mail" only (recovery would send it again: the relay has nothing)."""
    served, port = sink
    served.faults = {"bad@example.org": ["RCPT 550 5.1.1 No such user"]}
    provider = SmtpProvider(plain(port))
    stages: list[str] = []
    try:
        with pytest.raises(ProviderError):
            await provider.send(
                dataclasses.replace(message("bad@example.org"), on_attempt=stages.append)
            )
    finally:
        await provider.close()
    assert stages == ["mail"]
    assert served.received == []


async def test_the_end_of_data_is_written_only_after_its_journal_line(
    sink: tuple[Sink, int],
) -> None:
    """`on_attempt("end")` runs before the write that ends the DATA: when it fails (a
    full journal), the relay never gets the end, so it has nothing (and recovery, seeing
    no end line, may send the message again without doubling it)."""
    served, port = sink
    provider = SmtpProvider(plain(port))

    def journal(stage: str) -> None:
        if stage == "end":
            raise OSError("the attempt journal is torn")

    try:
        with pytest.raises(ProviderError) as raised:
            await provider.send(dataclasses.replace(message("a@example.org"), on_attempt=journal))
        await provider.send(message("b@example.org"))  # the pool goes on
    finally:
        await provider.close()
    assert raised.value.kind is ErrorKind.UNKNOWN
    assert served.recipients() == ["b@example.org"]


async def test_under_faults_every_message_arrives_exactly_once(sink: tuple[Sink, int]) -> None:
    served, port = sink
    faults = ["RCPT 421 4.3.2 Closing", "RCPT 451 4.3.0 Later", "DATA 454 4.7.0 Later", "DROP"]
    recipients = [f"r{i}@example.org" for i in range(40)]
    served.faults = {to: [faults[i % 4]] for i, to in enumerate(recipients) if i % 3 == 0}
    provider = SmtpProvider(plain(port, max_connections=4))
    route = Route(Strategy.SINGLE, (RouteTarget("smtp"),))
    health = Health(threshold=1000)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    try:
        deliveries = await asyncio.gather(
            *(
                deliver(message(to), route, {"smtp": provider}, health, sleep=sleep)
                for to in recipients
            )
        )
    finally:
        await provider.close()
    assert sorted(served.recipients()) == sorted(recipients)
    assert len(served.received) == len(recipients)
    assert sum(d.attempts == 2 for d in deliveries) == len(served.faults) == len(waits)
    assert set(waits) == {1.0}


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    sink: tuple[Sink, int],
) -> None:
    served, port = sink
    provider = SmtpProvider(plain(port, max_connections=1))
    try:
        await provider.send(message("a@example.org"))
        served.close_connections()
        await asyncio.sleep(0.05)
        await provider.send(message("b@example.org"))
    finally:
        await provider.close()
    assert served.recipients() == ["a@example.org", "b@example.org"]
    assert served.connections == 2


# With an address policy the connection goes to the checked address, over a socket of
# Owlat's own: TLS still verifies the relay's certificate for its host.
PINNED = pytest.mark.parametrize("addresses", [None, FetchPolicy(allow_loopback=True)])


@PINNED
async def test_starttls_with_auth(tmp_path: Path, addresses: FetchPolicy | None) -> None:
    ca_file, tls = self_signed(tmp_path)
    served = Sink()
    async with smtp_server(served, tls=tls, password="s3cret") as port:
        settings = SmtpSettings(
            host="127.0.0.1", port=port, username="owlat", password="s3cret",
            ca_file=str(ca_file), addresses=addresses,
        )  # fmt: skip
        good = SmtpProvider(settings)
        try:
            await good.send(message("a@example.org"))
        finally:
            await good.close()
        errors = []
        for wrong in (
            SmtpSettings(
                host="127.0.0.1", port=port, username="owlat", password="nope", ca_file=str(ca_file)
            ),
            SmtpSettings(host="127.0.0.1", port=port, username="owlat", password="s3cret"),
            SmtpSettings(host="127.0.0.1", port=port, security="none"),
        ):
            provider = SmtpProvider(dataclasses.replace(wrong, addresses=addresses))
            with pytest.raises(ProviderError) as raised:
                await provider.send(message("b@example.org"))
            errors.append(raised.value)
            await provider.close()
    assert served.recipients() == ["a@example.org"]
    assert served.authenticated
    assert {e.kind for e in errors} == {ErrorKind.AUTH_FAILED}
    assert "authentication refused: 535" in errors[0].message
    assert "CERTIFICATE_VERIFY_FAILED" in errors[1].message
    assert "MAIL: 530" in errors[2].message  # the server wants STARTTLS first


@PINNED
async def test_implicit_tls(tmp_path: Path, addresses: FetchPolicy | None) -> None:
    ca_file, tls = self_signed(tmp_path)
    served = Sink()
    async with smtp_server(served, tls=tls, implicit_tls=True) as port:
        provider = SmtpProvider(
            SmtpSettings(
                host="127.0.0.1",
                port=port,
                security="tls",
                ca_file=str(ca_file),
                addresses=addresses,
            )
        )
        try:
            await provider.send(message("a@example.org"))
        finally:
            await provider.close()
    assert served.recipients() == ["a@example.org"]


async def test_an_unreachable_relay_is_a_server_error() -> None:
    async with smtp_server(Sink()) as port:
        pass  # the port is free again
    provider = SmtpProvider(plain(port, timeout=2))
    with pytest.raises(ProviderError) as raised:
        await provider.send(message("a@example.org"))
    assert raised.value.kind is ErrorKind.SERVER_ERROR
    assert f"cannot connect to 127.0.0.1:{port}" in raised.value.message


@pytest.mark.parametrize(
    ("phase", "code", "text", "kind"),
    [
        ("MAIL", 550, "5.1.8 Bad sender address", ErrorKind.INVALID_SENDER),
        ("MAIL", 552, "5.3.4 Message size exceeds limit", ErrorKind.CONTENT_REJECTED),
        ("MAIL", 530, "5.7.0 Authentication required", ErrorKind.AUTH_FAILED),
        ("RCPT", 550, "5.7.1 Relaying denied by policy", ErrorKind.CONTENT_REJECTED),
        ("RCPT", 553, "mailbox name not allowed", ErrorKind.INVALID_RECIPIENT),
        (
            "RCPT",
            450,
            "4.2.1 The user you are trying to contact is receiving mail too quickly",
            ErrorKind.RATE_LIMIT,
        ),
        ("DATA", 421, "4.7.28 Our system has detected an unusual rate", ErrorKind.RATE_LIMIT),
        ("DATA", 535, "5.7.8 Username and Password not accepted", ErrorKind.AUTH_FAILED),
        ("CONNECT", 554, "No SMTP service here", ErrorKind.UNKNOWN),
    ],
)
def test_reply_classification(phase: str, code: int, text: str, kind: ErrorKind) -> None:
    error = classify_reply(phase, code, text)  # type: ignore[arg-type]
    assert error.kind is kind
    assert error.message == f"{phase}: {code} {text}"


async def _no_sleep(seconds: float) -> None:
    return None


def test_pool_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        SmtpProvider(SmtpSettings(host="x", max_connections=0))


async def test_an_unforeseen_failure_still_answers_its_sender(sink: tuple[Sink, int]) -> None:
    served, port = sink
    provider = SmtpProvider(plain(port, max_connections=1))
    try:
        with pytest.raises(ProviderError) as raised:  # aiosmtplib refuses the NUL itself
            await asyncio.wait_for(provider.send_raw("a@sender.test", "x\0@example.org", b"x"), 5)
        await provider.send(message("after@example.org"))
    finally:
        await provider.close()
    assert raised.value.kind is ErrorKind.UNKNOWN
    assert "prohibited control character" in raised.value.message
    assert served.recipients() == ["after@example.org"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_relay_resolving_to_a_refused_address_is_refused_at_connect_time(
    sink: tuple[Sink, int], host: str
) -> None:
    served, port = sink
    settings = SmtpSettings(host=host, port=port, security="none", addresses=FetchPolicy())
    provider = SmtpProvider(settings)
    try:
        with pytest.raises(ProviderError) as refused:
            await provider.send(message("a@example.org"))
    finally:
        await provider.close()
    assert refused.value.kind is ErrorKind.AUTH_FAILED
    assert str(refused.value) == (
        f"smtp: CONNECT: {host} resolves to a loopback address (127.0.0.1): refused (an SMTP relay "
        "must be on a public address)"
    )
    assert (served.connections, served.received) == (0, [])
    # Where the policy allows it, the connection goes to the checked address.
    allowed = SmtpProvider(dataclasses.replace(settings, addresses=FetchPolicy(True)))
    try:
        await allowed.send(message("b@example.org"))
    finally:
        await allowed.close()
    assert served.recipients() == ["b@example.org"]


async def test_a_relay_name_with_several_addresses_is_reached_on_the_one_that_answers(
    sink: tuple[Sink, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, port = sink

    async def resolved(host: str, port: int, policy: FetchPolicy) -> list[str]:
        return ["127.0.0.2", "127.0.0.1"]  # as `localhost` may be ::1, then 127.0.0.1

    monkeypatch.setattr(smtp, "checked_addresses", resolved)
    settings = SmtpSettings(host="relay.test", port=port, security="none")
    provider = SmtpProvider(dataclasses.replace(settings, addresses=FetchPolicy(True)))
    try:
        await provider.send(message("a@example.org"))
    finally:
        await provider.close()
    assert served.recipients() == ["a@example.org"]
