"""The one send path (lib/sending/sends.py) and emails:sendTest: the outbox by default, the
From domain refused unless verified, SMTP through a real aiosmtpd server with DKIM that
verifies against the published key, suppression by kind, idempotency keys, and crashes
between the claim and the record that never send twice."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import html as html_module
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import dkim
import pytest

from owlat.app.lib import instance
from owlat.app.lib.email_providers.outbox import OutboxProvider
from owlat.app.lib.email_providers.resend import ResendProvider
from owlat.app.lib.email_providers.smtp import SmtpProvider
from owlat.app.lib.email_providers.types import EmailMessage, SendResult
from owlat.app.lib.rendering import RenderedTemplate
from owlat.app.lib.sending import quotas, sends, signing
from owlat.app.lib.sending.composition import SendKind
from owlat.app.lib.sending.send_contents import content_for, footer_links
from owlat.app.lib.sending.sends import SendRequest, enqueue_send
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, outbox, owner_and_editor, uploaded
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import configure, dkim_dns, settled, smtp_domain
from tests.app.sending.servers import FakeResend, Sink, smtp_server
from tests.e2e.conftest import serve_in_process

DOMAIN = "news-example.com"
BLOCKS = json.dumps(
    [{"id": "t1", "type": "text", "content": {"html": "<p>Hello {{firstName|'friend'}}</p>"}}]
)


@pytest.fixture
async def owlat(owlat_on_both_engines: Application, tmp_path: Path, dns: DnsServer) -> Application:
    configure(tmp_path, dns)
    return owlat_on_both_engines


@pytest.fixture
async def team(owlat: Application) -> tuple[Caller, Caller, str]:
    return await owner_and_editor(owlat)


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, int]]:
    served = Sink()
    async with smtp_server(served) as port:
        yield served, port


async def _use_smtp(owner: Caller, port: int) -> None:
    await owner.mutation(
        "emailProviders:saveSmtp", {"host": "127.0.0.1", "port": port, "security": "none"}
    )


async def _enqueue(owlat: Application, request: SendRequest) -> str:
    async def run(ctx: Any) -> str:
        return await enqueue_send(ctx, request)

    return str(await in_mutation(owlat, run))


def _mails_to(data_dir: Path, address: str) -> list[email.message.EmailMessage]:
    """The outbox's mails to `address` (the invitation mail of the fixture may be there)."""
    return [mail for mail in outbox(data_dir) if mail["To"] == address]


async def test_a_test_send_goes_to_the_outbox_when_nothing_is_configured(
    team: tuple[Caller, Caller, str], tmp_path: Path
) -> None:
    owner, editor, _ = team
    send_id = await editor.mutation(
        "emails:sendTest",
        {"to": "Me@Example.com", "subject": "Hello {{firstName}}", "content": BLOCKS,
         "variables": {"firstName": "Ada"}},
    )  # fmt: skip
    send = await settled(editor, send_id)
    assert (send["status"], send["kind"], send["providerType"]) == ("sent", "test", "outbox")
    assert send["attempts"] == 1 and "deliveryKey" not in send
    assert "html" not in send  # bodies may hold one-time links: admins only
    full = await owner.query("transactionalSends:get", {"sendId": send_id})
    assert "Hello Ada" in full["html"] and "deliveryKey" not in full
    (mail,) = _mails_to(tmp_path, "me@example.com")
    assert mail["Subject"] == "[TEST] Hello Ada"
    assert mail["To"] == "me@example.com"
    assert mail["From"] == "no-reply@owlat.local"
    assert mail["Message-ID"] == f"<{send['messageId']}>"
    assert "Auto-Submitted" not in mail
    assert "Hello Ada" in mail.get_body(("html",)).get_content()
    listed = await editor.query(
        "transactionalSends:list", {"paginationOpts": {"numItems": 10, "cursor": None}}
    )
    assert [row["_id"] for row in listed["page"]] == [send_id]
    assert "html" not in listed["page"][0]


async def test_test_sends_are_limited_per_member(
    team: tuple[Caller, Caller, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, editor, _ = team
    monkeypatch.setattr(quotas, "TEST_SENDS", 2)
    test = {"to": "me@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
    for _ in range(2):
        await editor.mutation("emails:sendTest", test)
    with pytest.raises(ConvexError, match="^At most 2 test sends per 10 minutes; try again in"):
        await editor.mutation("emails:sendTest", test)
    await owner.mutation("emails:sendTest", test)  # per member
    with pytest.raises(ConvexError, match="^Give either content \\(blocks\\) or html, not both$"):
        await owner.mutation("emails:sendTest", {**test, "content": BLOCKS})


async def test_a_from_domain_must_be_verified_unless_the_route_is_the_outbox(
    team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    await _use_smtp(owner, sink[1])
    test = {"to": "me@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
    with pytest.raises(
        ConvexError,
        match=f"^Cannot send from news@{DOMAIN}: {DOMAIN} is not a sending domain of this "
        "organization; add it under Domains and publish its DNS records$",
    ):
        await editor.mutation("emails:sendTest", {**test, "fromEmail": f"news@{DOMAIN}"})
    await owner.mutation("domains:create", {"domain": DOMAIN, "providerKind": "smtp"})
    with pytest.raises(
        ConvexError,
        match=f"^Cannot send from news@{DOMAIN}: the sending domain {DOMAIN} is pending, not "
        "verified: publish its DNS records, then verify it$",
    ):
        await editor.mutation("emails:sendTest", {**test, "fromEmail": f"news@{DOMAIN}"})
    await smtp_domain(owner, dns, f"shop.{DOMAIN}")
    with pytest.raises(ConvexError, match=f"\\(shop.{DOMAIN} is verified, but each subdomain"):
        await editor.mutation("emails:sendTest", {**test, "fromEmail": f"x@deals.shop.{DOMAIN}"})
    assert await editor.query(
        "domains:checkSenderAddress", {"fromEmail": f"news@{DOMAIN}", "messageType": "test"}
    ) == {
        "allowed": False,
        "reason": f"Cannot send from news@{DOMAIN}: the sending domain "
        f"{DOMAIN} is pending, not verified: publish its DNS records, then verify it",
        "warning": None,
    }
    await owner.mutation(
        "providerRoutes:set",
        {"messageType": "test", "strategy": "single", "providers": [{"provider": "outbox"}]},
    )
    send_id = await editor.mutation("emails:sendTest", {**test, "fromEmail": f"news@{DOMAIN}"})
    assert (await settled(editor, send_id))["providerType"] == "outbox"
    assert sink[0].received == []


async def test_a_verification_over_a_day_old_is_stale_a_warning_that_does_not_stop_sending(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    await _use_smtp(owner, sink[1])
    verified = await smtp_domain(owner, dns, DOMAIN)
    check = {"fromEmail": f"news@{DOMAIN}", "messageType": "test"}
    assert verified["verificationStale"] is False
    assert await editor.query("domains:checkSenderAddress", check) == {
        "allowed": True,
        "reason": None,
        "warning": None,
    }
    day_and_an_hour_ago = verified["lastVerifiedAt"] - 25 * 3600 * 1000
    await in_mutation(
        owlat, lambda ctx: ctx.db.patch(verified["_id"], {"lastVerifiedAt": day_and_an_hour_ago})
    )
    [listed] = await editor.query("domains:list")
    shown = await editor.query("domains:get", {"domainId": verified["_id"]})
    assert listed["verificationStale"] is shown["verificationStale"] is True
    assert shown["status"] == "verified"
    answer = await editor.query("domains:checkSenderAddress", check)
    assert (answer["allowed"], answer["reason"]) == (True, None)
    assert answer["warning"].startswith(f"The verification of {DOMAIN} is over 24 hours old")
    test = {"to": "me@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
    send_id = await editor.mutation("emails:sendTest", {**test, "fromEmail": f"news@{DOMAIN}"})
    send = await settled(editor, send_id)
    assert (send["status"], send["providerType"]) == ("sent", "smtp"), send.get("errorMessage")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_under_owlat_dev_a_loopback_smtp_relay_is_a_local_sink_exempt_from_the_domain_rule(
    team: tuple[Caller, Caller, str],
    sink: tuple[Sink, int],
    dns: DnsServer,
    tmp_path: Path,
    host: str,
) -> None:
    owner, editor, _ = team
    configure(tmp_path, dns, development=True)
    await owner.mutation(
        "emailProviders:saveSmtp", {"host": host, "port": sink[1], "security": "none"}
    )
    test = {"to": "me@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
    send_id = await editor.mutation("emails:sendTest", {**test, "fromEmail": f"news@{DOMAIN}"})
    send = await settled(editor, send_id)
    assert (send["status"], send["providerType"]) == ("sent", "smtp"), send.get("errorMessage")
    assert [envelope.mail_from for envelope in sink[0].received] == [f"news@{DOMAIN}"]
    # A relay elsewhere is a real provider, under `owlat dev` too.
    await owner.mutation("emailProviders:saveSmtp", {"host": "smtp.example.net", "port": 25})
    with pytest.raises(ConvexError, match=f"^Cannot send from news@{DOMAIN}: {DOMAIN} is not a"):
        await editor.mutation("emails:sendTest", {**test, "fromEmail": f"news@{DOMAIN}"})
    # `owlat serve` never exempts an SMTP relay, loopback or not (and see the test above).
    await owner.mutation(
        "emailProviders:saveSmtp", {"host": host, "port": sink[1], "security": "none"}
    )
    configure(tmp_path, dns, development=False)
    with pytest.raises(ConvexError, match=f"^Cannot send from news@{DOMAIN}: {DOMAIN} is not a"):
        await editor.mutation("emails:sendTest", {**test, "fromEmail": f"news@{DOMAIN}"})


async def test_a_send_through_smtp_carries_a_dkim_signature_that_verifies(
    team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    await _use_smtp(owner, sink[1])
    await smtp_domain(owner, dns, DOMAIN)
    send_id = await editor.mutation(
        "emails:sendTest",
        {"to": "reader@example.org", "subject": "Signed", "content": BLOCKS,
         "fromEmail": f"news@{DOMAIN}", "fromName": "The News"},
    )  # fmt: skip
    send = await settled(editor, send_id)
    assert (send["status"], send["providerType"]) == ("sent", "smtp"), send.get("errorMessage")
    assert send["providerMessageId"] == send["messageId"]
    (envelope,) = sink[0].received
    assert (envelope.mail_from, envelope.rcpt_tos) == (f"news@{DOMAIN}", ["reader@example.org"])
    raw = envelope.original_content
    assert raw.startswith(b"DKIM-Signature: ")
    assert f"d={DOMAIN}".encode() in raw.split(b"\r\n\r\n")[0]
    assert dkim.verify(raw, dnsfunc=dkim_dns(dns))
    (health,) = await owner.query("emailProviders:list")
    assert health["health"]["status"] == "healthy" and health["health"]["sent"] == 1


async def test_a_claim_of_several_sends_is_signed_at_once_and_each_signature_verifies(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    """A claim of more than `signing.POOL_MIN` sends is signed in the signing processes:
    each message carries its own valid signature and goes out once."""
    owner, _, organization_id = team
    await _use_smtp(owner, sink[1])
    await smtp_domain(owner, dns, DOMAIN)

    def request(n: int) -> SendRequest:
        return SendRequest(
            organization_id, SendKind.TRANSACTIONAL, f"r{n}@example.org", f"Receipt {n}",
            f"Hello {n}", html=f"<p>Hello {n}</p>", from_email=f"news@{DOMAIN}",
        )  # fmt: skip

    async def burst(ctx: Any) -> list[str]:
        return [await enqueue_send(ctx, request(n)) for n in range(6)]

    send_ids = await in_mutation(owlat, burst)
    rows = [await settled(owner, send_id) for send_id in send_ids]
    assert {row["status"] for row in rows} == {"sent"}, [row.get("errorMessage") for row in rows]
    by_recipient = {envelope.rcpt_tos[0]: envelope for envelope in sink[0].received}
    assert sorted(by_recipient) == sorted(f"r{n}@example.org" for n in range(6))
    assert len(sink[0].received) == 6
    for n in range(6):
        raw = by_recipient[f"r{n}@example.org"].original_content
        assert raw.startswith(b"DKIM-Signature: ") and raw.count(b"DKIM-Signature") == 1
        assert f"Subject: Receipt {n}\r\n".encode() in raw
        assert dkim.verify(raw, dnsfunc=dkim_dns(dns))


async def test_successive_sends_reuse_the_relay_connection(
    team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    await _use_smtp(owner, sink[1])
    await smtp_domain(owner, dns, DOMAIN)
    for to in ("one@example.org", "two@example.org", "three@example.org"):
        send_id = await editor.mutation(
            "emails:sendTest",
            {"to": to, "subject": "x", "html": "<p>x</p>", "fromEmail": f"a@{DOMAIN}"},
        )
        assert (await settled(editor, send_id))["status"] == "sent"
    assert len(sink[0].received) == 3 and sink[0].connections == 1


async def test_a_refusal_is_recorded_with_its_kind_and_counted_against_nothing_but_the_send(
    team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    await _use_smtp(owner, sink[1])
    await smtp_domain(owner, dns, DOMAIN)
    sink[0].faults["gone@example.org"] = ["RCPT 550 5.1.1 no such user"]
    send_id = await editor.mutation(
        "emails:sendTest",
        {"to": "gone@example.org", "subject": "x", "html": "<p>x</p>", "fromEmail": f"a@{DOMAIN}"},
    )
    send = await settled(editor, send_id)
    assert (send["status"], send["errorCode"]) == ("failed", "INVALID_RECIPIENT")
    assert "550 5.1.1 no such user" in send["errorMessage"]
    (provider,) = await owner.query("emailProviders:list")
    assert provider["health"]["status"] == "healthy"  # a refused recipient is not its fault
    assert (provider["health"]["failed"], provider["health"]["lastErrorKind"]) == (
        1, "INVALID_RECIPIENT",
    )  # fmt: skip


async def test_suppression_by_kind(owlat: Application, team: tuple[Caller, Caller, str]) -> None:
    owner, _, organization_id = team
    await owner.mutation("blockedEmails:add", {"email": "blocked@example.com", "reason": "manual"})
    await owner.mutation("blockedEmails:add", {"email": "cold@example.com", "reason": "unengaged"})
    contact_id = await owner.mutation("contacts:createFromSession", {"email": "left@example.com"})

    async def unsubscribe(ctx: Any) -> None:
        await ctx.db.patch(contact_id, {"unsubscribedAt": 1.0})

    await in_mutation(owlat, unsubscribe)

    async def send(kind: SendKind, to: str) -> dict[str, Any]:
        request = SendRequest(organization_id, kind, to, "Subject", "Body")
        return await settled(owner, await _enqueue(owlat, request))

    blocked = await send(SendKind.TRANSACTIONAL, "blocked@example.com")
    assert (blocked["status"], blocked["errorCode"], blocked["errorMessage"]) == (
        "failed", "RECIPIENT_SUPPRESSED", "blocked@example.com is on the suppression list (manual)",
    )  # fmt: skip
    assert (await send(SendKind.TRANSACTIONAL, "cold@example.com"))["status"] == "sent"
    assert (await send(SendKind.AUTOMATION, "cold@example.com"))["status"] == "failed"
    assert (await send(SendKind.TRANSACTIONAL, "left@example.com"))["status"] == "sent"
    unsubscribed = await send(SendKind.AUTOMATION, "left@example.com")
    assert unsubscribed["errorMessage"] == "left@example.com unsubscribed from all marketing email"
    assert (await send(SendKind.TEST, "blocked@example.com"))["status"] == "sent"


async def test_a_repeated_idempotency_key_records_and_sends_once(
    owlat: Application, team: tuple[Caller, Caller, str], tmp_path: Path
) -> None:
    owner, _, organization_id = team
    request = SendRequest(
        organization_id, SendKind.TRANSACTIONAL, "x@example.com", "Receipt", "Thanks",
        idempotency_key="order-42",
    )  # fmt: skip
    first = await _enqueue(owlat, request)
    assert await _enqueue(owlat, request) == first
    send = await settled(owner, first)
    assert send["headers"] == {"Auto-Submitted": "auto-generated"}
    assert len(_mails_to(tmp_path, "x@example.com")) == 1


async def test_a_request_is_checked_before_anything_is_recorded(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    _, _, organization_id = team
    with pytest.raises(ConvexError, match="^Invalid email address: 'nobody'$"):
        await _enqueue(
            owlat, SendRequest(organization_id, SendKind.TRANSACTIONAL, "nobody", "s", "t")
        )
    with pytest.raises(ConvexError, match="^The message cannot be sent: a campaign message needs"):
        await _enqueue(owlat, SendRequest(organization_id, SendKind.CAMPAIGN, "a@b.com", "s", "t"))
    with pytest.raises(ConvexError, match="^Subject must be 1 to 1000 characters$"):
        await _enqueue(owlat, SendRequest(organization_id, SendKind.TEST, "a@b.com", " ", "t"))


# -- crashes between the claim and the record ----------------------------------------------


CRASHED = "x@example.com"  # the recipient whose delivery "crashes" (crash_after_accepting)


@pytest.fixture
def crash_after_accepting(monkeypatch: pytest.MonkeyPatch) -> Callable[[type], asyncio.Event]:
    """Make `provider_class.send` raise once after the provider took a message to
    `CRASHED`, as if the process died before recording it; the event is set when that
    happened. (Only that recipient: the fixture's invitation mail may still be delivered.)"""

    def install(provider_class: type) -> asyncio.Event:
        original = provider_class.send
        crashed = asyncio.Event()

        async def send(self: Any, message: EmailMessage) -> SendResult:
            result: SendResult = await original(self, message)
            if CRASHED in message.to and not crashed.is_set():
                crashed.set()
                raise RuntimeError("the process died right after the provider took it")
            return result

        monkeypatch.setattr(provider_class, "send", send)
        return crashed

    return install


async def _crash_then_recover(
    owlat: Application, owner: Caller, send_id: str, crashed: asyncio.Event
) -> dict[str, Any]:
    await asyncio.wait_for(crashed.wait(), 20)
    await asyncio.sleep(0.2)  # the delivery action ends without recording anything
    stalled = await owner.query("transactionalSends:get", {"sendId": send_id})
    assert (stalled["status"], stalled["attempts"]) == ("sending", 1)
    handled = await owlat.run_mutation(
        "transactionalSends:recoverStalled", {"leaseMs": 0}, internal=True
    )
    assert handled.value == 1
    return await settled(owner, send_id)


async def test_a_crash_after_the_outbox_took_it_is_sent_again_with_its_key_once(
    owlat: Application,
    team: tuple[Caller, Caller, str],
    tmp_path: Path,
    crash_after_accepting: Callable[[type], asyncio.Event],
) -> None:
    owner, _, organization_id = team
    crashed = crash_after_accepting(OutboxProvider)
    request = SendRequest(organization_id, SendKind.TRANSACTIONAL, "x@example.com", "s", "t")
    send = await _crash_then_recover(owlat, owner, await _enqueue(owlat, request), crashed)
    assert (send["status"], send["attempts"]) == ("sent", 2)
    (mail,) = _mails_to(tmp_path, "x@example.com")  # the second found the first one's file
    assert mail["Message-ID"] == f"<{send['messageId']}>"


async def test_a_crash_after_resend_took_it_is_sent_again_and_resend_dedupes(
    owlat: Application,
    team: tuple[Caller, Caller, str],
    tmp_path: Path,
    dns: DnsServer,
    crash_after_accepting: Callable[[type], asyncio.Event],
) -> None:
    owner, _, organization_id = team
    fake = FakeResend()
    async with serve_in_process(fake.app()) as url:
        configure(tmp_path, dns, resend_api_url=url)
        await owner.mutation("emailProviders:saveResend", {"apiKey": fake.api_key})
        await owner.mutation(
            "providerRoutes:set",
            {"messageType": "transactional", "strategy": "single",
             "providers": [{"provider": "resend"}]},
        )  # fmt: skip
        domain_id = await owner.mutation(
            "domains:create", {"domain": DOMAIN, "providerKind": "resend"}
        )
        added = await owner.query("domains:get", {"domainId": domain_id})
        dns.publish(*added["zoneFile"].splitlines())
        await owner.action("dnsVerification:verify", {"domainId": domain_id})
        crashed = crash_after_accepting(ResendProvider)
        request = SendRequest(
            organization_id, SendKind.TRANSACTIONAL, "x@example.com", "s", "t",
            from_email=f"hello@{DOMAIN}",
        )  # fmt: skip
        send = await _crash_then_recover(owlat, owner, await _enqueue(owlat, request), crashed)
    assert (send["status"], send["attempts"]) == ("sent", 2)
    assert fake.requests == 2 and len(fake.sent) == 1
    assert send["providerMessageId"] == fake.sent[0]["id"]
    assert fake.sent[0]["text"] == "t"  # Resend takes the bodies as fields (TAKES_FIELDS)


async def test_a_crash_during_an_smtp_send_is_failed_as_uncertain_and_never_sent_again(
    owlat: Application,
    team: tuple[Caller, Caller, str],
    sink: tuple[Sink, int],
    dns: DnsServer,
    crash_after_accepting: Callable[[type], asyncio.Event],
) -> None:
    owner, _, organization_id = team
    await _use_smtp(owner, sink[1])
    await smtp_domain(owner, dns, DOMAIN)
    crashed = crash_after_accepting(SmtpProvider)
    request = SendRequest(
        organization_id, SendKind.TRANSACTIONAL, "x@example.com", "s", "t",
        from_email=f"hello@{DOMAIN}",
    )  # fmt: skip
    send = await _crash_then_recover(owlat, owner, await _enqueue(owlat, request), crashed)
    assert (send["status"], send["errorCode"]) == ("failed", "DELIVERY_UNCERTAIN")
    assert len(sink[0].received) == 1


async def test_a_lost_delivery_job_is_scheduled_again(
    owlat: Application, team: tuple[Caller, Caller, str], tmp_path: Path
) -> None:
    owner, _, organization_id = team

    async def queued_without_a_job(ctx: Any) -> str:
        send_id = await enqueue_send(
            ctx, SendRequest(organization_id, SendKind.TRANSACTIONAL, "x@example.com", "s", "t")
        )
        for job in await ctx.db.system.query("_scheduled_functions").collect():
            if job["state"]["kind"] == "pending":
                await ctx.scheduler.cancel(job["_id"])
        return send_id

    send_id = await in_mutation(owlat, queued_without_a_job)
    await asyncio.sleep(0.1)
    assert (await owner.query("transactionalSends:get", {"sendId": send_id}))["status"] == "queued"
    await owlat.run_mutation("transactionalSends:recoverStalled", {"leaseMs": 0}, internal=True)
    assert (await settled(owner, send_id))["status"] == "sent"
    assert len(_mails_to(tmp_path, "x@example.com")) == 1


# -- the organization's delivery queue -------------------------------------------------------


async def _delivery_jobs(owlat: Application) -> list[dict[str, Any]]:
    async def jobs(ctx: Any) -> list[dict[str, Any]]:
        rows = await ctx.db.system.query("_scheduled_functions").collect()
        return [row for row in rows if row["name"].startswith("transactionalSends:deliver")]

    return list(await in_query(owlat, jobs))


async def test_a_burst_of_sends_schedules_one_delivery_job_and_keeps_bodies_apart(
    owlat: Application, team: tuple[Caller, Caller, str], tmp_path: Path
) -> None:
    owner, _, organization_id = team

    def request(n: int) -> SendRequest:
        return SendRequest(
            organization_id, SendKind.TRANSACTIONAL, f"r{n}@example.com", "s", "t",
            html=f"<p>Hi {n}</p>", data_variables={"n": n},
        )  # fmt: skip

    async def burst(ctx: Any) -> list[str]:
        return [await enqueue_send(ctx, request(n)) for n in range(20)]

    send_ids = await in_mutation(owlat, burst)
    jobs = await _delivery_jobs(owlat)
    assert [job["name"] for job in jobs] == ["transactionalSends:deliverQueue"]
    rows = [await settled(owner, send_id) for send_id in send_ids]
    assert {row["status"] for row in rows} == {"sent"}
    assert rows[3]["html"] == "<p>Hi 3</p>" and rows[3]["dataVariables"] == {"n": 3}
    for n in range(20):
        assert len(_mails_to(tmp_path, f"r{n}@example.com")) == 1

    async def stored(ctx: Any) -> dict[str, Any]:
        return dict(await ctx.db.get(send_ids[3]))

    row = await in_query(owlat, stored)
    assert "html" not in row and "text" not in row and "dataVariables" not in row
    # the queue was released: the next send schedules a job again
    await _enqueue(
        owlat, SendRequest(organization_id, SendKind.TRANSACTIONAL, "late@example.com", "s", "t")
    )
    assert len(await _delivery_jobs(owlat)) == 2


async def test_a_queue_whose_job_died_gets_a_new_job(
    owlat: Application, team: tuple[Caller, Caller, str], tmp_path: Path
) -> None:
    owner, _, organization_id = team

    async def queued_with_a_dead_job(ctx: Any) -> str:
        send_id = await enqueue_send(
            ctx, SendRequest(organization_id, SendKind.TRANSACTIONAL, "x@example.com", "s", "t")
        )
        for job in await ctx.db.system.query("_scheduled_functions").collect():
            if job["state"]["kind"] == "pending":
                await ctx.scheduler.cancel(job["_id"])
        return send_id

    send_id = await in_mutation(owlat, queued_with_a_dead_job)
    await asyncio.sleep(0.1)
    assert (await owner.query("transactionalSends:get", {"sendId": send_id}))["status"] == "queued"
    # the lease has not passed: the send itself is left alone, its queue gets a new job
    handled = await owlat.run_mutation("transactionalSends:recoverStalled", {}, internal=True)
    assert handled.value == 0
    assert (await settled(owner, send_id))["status"] == "sent"
    assert len(_mails_to(tmp_path, "x@example.com")) == 1


async def test_a_claim_of_content_sends_is_composed_and_signed_in_the_signing_processes(
    owlat: Application,
    team: tuple[Caller, Caller, str],
    sink: tuple[Sink, int],
    dns: DnsServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sends of two contents (languages), each with its variables, footer links and an
    attachment, claimed at once (more than `signing.POOL_MIN`, in 3 chunks): personalized,
    composed and signed in the signing processes, each message its recipient's, with its
    attachment intact and a valid signature, sent once."""
    signing.shutdown()
    monkeypatch.setattr(signing, "processes", lambda: 3)
    owner, _, organization_id = team
    await _use_smtp(owner, sink[1])
    await smtp_domain(owner, dns, DOMAIN)
    email_id = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Receipt", "slug": "receipt", "subject": "Order {{orderId}}", "content": BLOCKS},
    )
    pdf = b"%PDF-1.4 \x00\xff" + bytes(range(256)) * 40
    storage_id = await uploaded(owlat, organization_id, pdf)
    renderings = {
        "en": RenderedTemplate("<p>Order {{orderId}} for {{name}}</p>", "", "", "", ("orderId",)),
        "de": RenderedTemplate("<p>Bestellung {{orderId}}</p>", "", "", "", ("orderId",)),
    }
    attachment = {"filename": "r.pdf", "contentType": "application/pdf", "storageId": storage_id}
    links = [footer_links(f"contact{n}") for n in range(6)]

    async def burst(ctx: Any) -> list[str]:
        sent = []
        for n in range(6):
            language = ("en", "de")[n % 2]
            content_id = await content_for(
                ctx, organization_id, email_id, language, renderings[language]
            )
            sent.append(await enqueue_send(ctx, SendRequest(
                organization_id, SendKind.TRANSACTIONAL, f"r{n}@example.org", f"Order {n}",
                from_email=f"news@{DOMAIN}", content_id=content_id,
                data_variables={"orderId": f"A-{n}", "name": f"Reader {n}"},
                footer_links=links[n], attachments=[attachment],
            )))  # fmt: skip
        return sent

    send_ids = await in_mutation(owlat, burst)
    rows = [await settled(owner, send_id) for send_id in send_ids]
    assert {row["status"] for row in rows} == {"sent"}, [row.get("errorMessage") for row in rows]
    assert signing._pool is not None  # the claim went to the signing processes
    assert len(sink[0].received) == 6
    by_recipient = {envelope.rcpt_tos[0]: envelope for envelope in sink[0].received}
    for n, row in enumerate(rows):
        raw = by_recipient[f"r{n}@example.org"].original_content
        assert raw.startswith(b"DKIM-Signature: ") and dkim.verify(raw, dnsfunc=dkim_dns(dns))
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        assert (mail["Subject"], mail["Message-ID"]) == (f"Order {n}", f"<{row['messageId']}>")
        body = mail.get_body(("html",))
        assert body is not None
        html = body.get_content()
        shown = f"Order A-{n} for Reader {n}" if n % 2 == 0 else f"Bestellung A-{n}"
        assert shown in html and "Order A-" not in html.replace(shown, "")
        assert links[n] is not None and html_module.escape(links[n]["unsubscribe"]) in html
        (part,) = mail.iter_attachments()
        assert (part.get_filename(), part.get_content()) == ("r.pdf", pdf)


async def test_a_claim_reads_the_tracking_of_each_kind_once(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    """Sends of two kinds in one claim (as a recovery's `deliver` claims them): each kind
    is tracked by its own rule (`ClaimReads`: read once per organization and kind)."""
    owner, _, organization_id = team
    await owner.mutation("organizationSettings:update", {"trackTransactional": True})

    def request(n: int, kind: SendKind) -> SendRequest:
        return SendRequest(organization_id, kind, f"r{n}@example.org", "s", "t", html="<p>x</p>")

    async def claim_together(ctx: Any) -> list[Any]:
        kinds = [SendKind.TEST, SendKind.TRANSACTIONAL, SendKind.TEST, SendKind.TRANSACTIONAL]
        send_ids = [await enqueue_send(ctx, request(n, kind)) for n, kind in enumerate(kinds)]
        claimed = await sends.claim_many(ctx, send_ids, ["outbox"], 1.0, 60_000)
        return [item["tracking"] for item in claimed["claimed"]]

    tracked = {"baseUrl": instance.current().base_url.rstrip("/")}
    assert await in_mutation(owlat, claim_together) == [None, tracked, None, tracked]
