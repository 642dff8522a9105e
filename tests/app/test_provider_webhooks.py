"""POST /webhooks/ses and /webhooks/resend over the real site port (reference §6, §10.1):
signatures checked (SNS with a locally made certificate served from a loopback HTTPS
server through the test-only allowance, Svix with a whsec_ secret), events applied to the
send the provider accepted, with the lifecycle's effects; raw payloads kept 90 days."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from owlat.app.lib import instance, standard_webhooks
from owlat.app.lib.provider_webhooks import resend, sns
from owlat.runtime import ConvexError
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, Site
from tests.app.mail_setup import settled
from tests.app.rendering.samples import text_block
from tests.app.sending.servers import https_server
from tests.app.test_rest_api import api_key, client, organization

SNS_HOST = "sns.us-east-1.amazonaws.com"
TOPIC = "arn:aws:sns:us-east-1:123456789012:owlat-ses"
RESEND_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    return site_on_both_engines


@dataclasses.dataclass
class SnsSigner:
    """A locally made signing certificate, served (with SubscribeURL) over loopback TLS."""

    key: rsa.RSAPrivateKey
    base: str
    confirmed: list[str]

    def message(
        self, kind: str = "Notification", version: str = "1", **fields: Any
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "Type": kind,
            "MessageId": secrets.token_hex(8),
            "TopicArn": TOPIC,
            "Message": "{}",
            "Timestamp": datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
            "SignatureVersion": version,
            "SigningCertURL": f"{self.base}/cert.pem",
            **fields,
        }
        if kind != "Notification":
            message.setdefault("Token", "tok")
            message.setdefault("SubscribeURL", f"{self.base}/confirm?token=tok")
        return self.signed(message)

    def signed(self, message: dict[str, Any]) -> dict[str, Any]:
        algorithm = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
        signature = self.key.sign(sns.canonical(message), padding.PKCS1v15(), algorithm)
        return {**message, "Signature": base64.b64encode(signature).decode()}


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
async def signer(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SnsSigner]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _certificate(key)
    confirmed: list[str] = []

    async def cert(request: Request) -> Response:
        return Response(pem, media_type="application/x-pem-file")

    async def confirm(request: Request) -> Response:
        confirmed.append(str(request.url))
        return Response("<ConfirmSubscriptionResponse/>")

    app = Starlette(routes=[Route("/cert.pem", cert), Route("/confirm", confirm)])
    folder = tmp_path / "tls"
    folder.mkdir()
    async with https_server(app, folder) as (base, trust):
        policy = sns.SnsPolicy(extra_hosts=(base.removeprefix("https://"),), verify=trust)
        configured = dataclasses.replace(
            instance.current(),
            ses_sns_topic_arns=(TOPIC,),
            resend_webhook_secret=RESEND_SECRET,
            sns=policy,
        )
        monkeypatch.setattr(instance, "_current", configured)
        monkeypatch.setattr(sns, "_certificates", {})
        yield SnsSigner(key, base, confirmed)


@dataclasses.dataclass
class Sent:
    owner: Caller
    send_id: str
    contact_id: str


async def _sent(site: Site, owner: Caller, email: str, provider: str, message_id: str) -> Sent:
    """A transactional send delivered (to the outbox), then recorded as `provider`'s
    `message_id`, as if that provider had taken it."""
    async with client(site, await api_key(owner)) as api:
        response = await api.post("/transactional", json={"slug": "hello", "email": email})
    answer = response.json()["data"]
    await settled(owner, answer["transactionalEmailId"])

    async def as_provider(ctx: Any) -> None:
        await ctx.db.patch(
            answer["transactionalEmailId"],
            {"providerType": provider, "providerMessageId": message_id},
        )

    await in_mutation(site.application, as_provider)
    return Sent(owner, answer["transactionalEmailId"], answer["contactId"])


@pytest.fixture
async def owner(site: Site) -> Caller:
    owner, _ = await organization(site, "acme")
    email_id = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Hello", "slug": "hello", "subject": "Hello",
         "content": json.dumps([text_block("<p>Hello</p>")])},
    )  # fmt: skip
    await owner.mutation("transactionalEmails:publish", {"transactionalEmailId": email_id})
    return owner


async def _post(
    site: Site, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        return await http.post(path, content=raw, headers=headers or {})


def _ses(kind: str, message_id: str, **detail: Any) -> str:
    return json.dumps({"notificationType": kind, "mail": {"messageId": message_id}, **detail})


async def _rows(site: Site, table: str) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in await ctx.db.query(table).collect()]

    return list(await in_query(site.application, read))


async def _send(owner: Caller, send_id: str) -> dict[str, Any]:
    row: dict[str, Any] = await owner.query("transactionalSends:get", {"sendId": send_id})
    return row


async def _activity_types(site: Site, contact_id: str) -> list[str]:
    rows = await _rows(site, "contactActivities")
    return [
        r["activityType"]
        for r in rows
        if r["contactId"] == contact_id and r["activityType"] != "created"
    ]


# -- SES through SNS -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
async def test_an_ses_hard_bounce_suppresses_the_address(
    site: Site, owner: Caller, signer: SnsSigner, version: str
) -> None:
    sent = await _sent(site, owner, "gone@example.com", "ses", "ses-1")
    diagnostic = [{"diagnosticCode": "smtp; 550 5.1.1 user unknown"}]
    bounce = {"bounceType": "Permanent", "timestamp": "2026-01-02T03:04:05.000Z",
              "bouncedRecipients": diagnostic}  # fmt: skip
    message = signer.message(version=version, Message=_ses("Bounce", "ses-1", bounce=bounce))
    response = await _post(site, "/webhooks/ses", message)
    assert (response.status_code, response.json()) == (200, {"success": True, "kind": "bounced"})
    row = await _send(owner, sent.send_id)
    assert (row["status"], row["bounceType"]) == ("bounced", "hard")
    assert row["errorMessage"] == "smtp; 550 5.1.1 user unknown"
    (blocked,) = await _rows(site, "blockedEmails")
    assert (blocked["email"], blocked["reason"], blocked["bounceType"]) == (
        "gone@example.com", "bounced", "hard",
    )  # fmt: skip
    assert blocked["sourceSendId"] == f"transactionalSends:{sent.send_id}"
    assert await _activity_types(site, sent.contact_id) == ["email_bounced"]
    (payload,) = await _rows(site, "webhookPayloads")
    assert payload["source"] == "ses" and json.loads(payload["rawPayload"]) == message
    # the same notification again changes nothing
    assert (await _post(site, "/webhooks/ses", message)).status_code == 200
    assert len(await _rows(site, "blockedEmails")) == 1
    assert await _activity_types(site, sent.contact_id) == ["email_bounced"]


async def test_ses_complaints_and_deliveries(site: Site, owner: Caller, signer: SnsSigner) -> None:
    delivered = await _sent(site, owner, "ok@example.com", "ses", "ses-d")
    message = signer.message(
        Message=_ses("Delivery", "ses-d", delivery={"timestamp": "2026-01-02T03:04:05Z"})
    )
    assert (await _post(site, "/webhooks/ses", message)).json() == {
        "success": True,
        "kind": "delivered",
    }
    row = await _send(owner, delivered.send_id)
    assert (row["status"], row["deliveredAt"]) == ("delivered", 1767323045000)
    complained = await _sent(site, owner, "angry@example.com", "ses", "ses-c")
    message = signer.message(
        Message=json.dumps({"eventType": "Complaint", "mail": {"messageId": "ses-c"}})
    )
    assert (await _post(site, "/webhooks/ses", message)).json() == {
        "success": True,
        "kind": "complained",
    }
    row = await _send(owner, complained.send_id)
    assert row["status"] == "complained" and row["deliveredAt"] is not None
    (blocked,) = await _rows(site, "blockedEmails")
    assert (blocked["email"], blocked["reason"]) == ("angry@example.com", "complained")
    assert await _activity_types(site, complained.contact_id) == ["email_complained"]
    other = signer.message(
        Message=json.dumps({"notificationType": "Send", "mail": {"messageId": "x"}})
    )
    assert (await _post(site, "/webhooks/ses", other)).json() == {"success": True, "ignored": True}


async def test_five_soft_bounces_suppress_and_a_delivery_resets_the_count(
    site: Site, owner: Caller, signer: SnsSigner
) -> None:
    async def soft(index: int) -> None:
        await _sent(site, owner, "full@example.com", "ses", f"soft-{index}")
        bounce = {
            "bounceType": "Transient",
            "bouncedRecipients": [{"diagnosticCode": "mailbox full"}],
        }
        message = signer.message(Message=_ses("Bounce", f"soft-{index}", bounce=bounce))
        assert (await _post(site, "/webhooks/ses", message)).status_code == 200

    for index in range(4):
        await soft(index)
    assert await _rows(site, "blockedEmails") == []
    sent = await _sent(site, owner, "full@example.com", "ses", "fine")
    message = signer.message(Message=_ses("Delivery", "fine", delivery={}))
    await _post(site, "/webhooks/ses", message)
    contact = await owner.query("contacts:get", {"contactId": sent.contact_id})
    assert contact.get("softBounceCount") == 0
    for index in range(4, 9):
        await soft(index)
        assert len(await _rows(site, "blockedEmails")) == (1 if index == 8 else 0)
    (blocked,) = await _rows(site, "blockedEmails")
    assert (blocked["reason"], blocked["bounceType"]) == ("bounced", "soft")
    # a later hard bounce of a soft-bounced send hardens the row
    hard = {"bounceType": "Permanent", "bouncedRecipients": [{}]}
    await _post(
        site, "/webhooks/ses", signer.message(Message=_ses("Bounce", "soft-8", bounce=hard))
    )
    (blocked,) = await _rows(site, "blockedEmails")
    assert blocked["bounceType"] == "hard"


async def test_a_subscription_confirmation_is_confirmed(
    site: Site, owner: Caller, signer: SnsSigner
) -> None:
    message = signer.message("SubscriptionConfirmation")
    response = await _post(site, "/webhooks/ses", message)
    assert response.json() == {"success": True, "kind": "subscription_confirmed"}
    assert signer.confirmed == [f"{signer.base}/confirm?token=tok"]
    elsewhere = signer.message("SubscriptionConfirmation", SubscribeURL="https://evil.example/c")
    response = await _post(site, "/webhooks/ses", elsewhere)
    assert response.status_code == 400
    assert response.json() == {"error": "SubscribeURL not on sns.us-east-1.amazonaws.com"}
    assert len(signer.confirmed) == 1


async def test_sns_refusals(site: Site, owner: Caller, signer: SnsSigner) -> None:
    sent = await _sent(site, owner, "x@example.com", "ses", "ses-r")
    good = signer.message(Message=_ses("Complaint", "ses-r"))
    tampered = {**good, "Message": _ses("Bounce", "ses-r", bounce={"bounceType": "Permanent"})}
    cases = [
        (signer.message(TopicArn=TOPIC.replace("123", "999")), 403, "Unknown TopicArn"),
        (signer.signed({**good, "SigningCertURL": f"https://{SNS_HOST}.evil.example/c.pem"}),
         401, "SigningCertURL not on sns.us-east-1.amazonaws.com"),
        (signer.signed({**good, "SigningCertURL": "http://sns.us-east-1.amazonaws.com/c.pem"}),
         401, "SigningCertURL not an https URL"),
        (signer.signed({**good, "SignatureVersion": "3"}), 401, "Unsupported SignatureVersion"),
        (signer.signed({**good, "Timestamp": "2020-01-01T00:00:00.000Z"}), 401,
         "SNS message timestamp out of tolerance"),
        (tampered, 401, "Invalid SNS signature"),
        (b"{not json", 400, "Invalid JSON"),
        (signer.message(Message="[1]"), 400, "Invalid event payload"),
    ]  # fmt: skip
    for body, status, reason in cases:
        response = await _post(site, "/webhooks/ses", body)
        assert (response.status_code, response.json()) == (status, {"error": reason}), reason
    assert (await _send(owner, sent.send_id))["status"] == "sent"
    assert await _rows(site, "webhookPayloads") == []
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        response = await http.get("/webhooks/ses")
    assert (response.status_code, response.json()) == (405, {"error": "Method not allowed"})


async def test_unconfigured_endpoints_answer_503(site: Site) -> None:
    assert (await _post(site, "/webhooks/ses", {})).status_code == 503
    assert (await _post(site, "/webhooks/resend", {})).status_code == 503


def test_certificate_urls_are_pinned_to_the_topics_sns_region() -> None:
    policy = sns.SnsPolicy()
    ok = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"
    assert sns.url_problem(ok, "us-east-1", policy, pem=True) is None
    assert sns.url_problem(ok.replace(".com/", ".com.cn/"), "us-east-1", policy, pem=True) is None
    for url in (
        ok.replace("us-east-1", "eu-west-1"),
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://user@sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.txt",
        "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
    ):
        assert sns.url_problem(url, "us-east-1", policy, pem=True) is not None, url


# -- Resend (Svix) ---------------------------------------------------------------------------


def _svix(body: bytes, secret: str = RESEND_SECRET, at: int | None = None) -> dict[str, str]:
    timestamp = str(int(time.time()) if at is None else at)
    signature = standard_webhooks.sign(secret, "msg_1", timestamp, body)
    return {
        "svix-id": "msg_1",
        "svix-timestamp": timestamp,
        "svix-signature": f"v1,bogus v1,{signature}",
    }


async def test_resend_bounces_and_refusals(site: Site, owner: Caller, signer: SnsSigner) -> None:
    sent = await _sent(site, owner, "nobody@example.com", "resend", "re-1")
    ses_sent = await _sent(site, owner, "ses@example.com", "ses", "re-2")
    bounce = {"message": "550 5.1.1 mailbox does not exist"}
    event = {"type": "email.bounced", "created_at": "2026-01-02T03:04:05.000Z",
             "data": {"email_id": "re-1", "bounce": bounce}}  # fmt: skip
    body = json.dumps(event).encode()
    wrong = "whsec_" + base64.b64encode(b"w" * 32).decode()
    for headers, reason in (
        ({}, "Missing Svix headers"),
        (_svix(body, wrong), "Invalid Svix signature"),
        (_svix(body, at=int(time.time()) - 600), "Svix timestamp out of tolerance"),
        (_svix(body + b" "), "Invalid Svix signature"),
    ):
        response = await _post(site, "/webhooks/resend", body, headers)
        assert (response.status_code, response.json()) == (401, {"error": reason})
    assert (await _send(owner, sent.send_id))["status"] == "sent"
    response = await _post(site, "/webhooks/resend", body, _svix(body))
    assert response.json() == {"success": True, "kind": "bounced"}
    row = await _send(owner, sent.send_id)
    assert (row["status"], row["bounceType"], row["bouncedAt"]) == (
        "bounced",
        "hard",
        1767323045000,
    )
    # an id of a message another provider sent is not Resend's to report on
    other = json.dumps({"type": "email.complained", "data": {"email_id": "re-2"}}).encode()
    assert (await _post(site, "/webhooks/resend", other, _svix(other))).status_code == 200
    assert (await _send(owner, ses_sent.send_id))["status"] == "sent"
    opened = json.dumps({"type": "email.opened", "data": {"email_id": "re-1"}}).encode()
    response = await _post(site, "/webhooks/resend", opened, _svix(opened))
    assert response.json() == {"success": True, "ignored": True}
    junk = b'{"data": {}}'
    response = await _post(site, "/webhooks/resend", junk, _svix(junk))
    assert (response.status_code, response.json()) == (400, {"error": "Invalid event payload"})


def test_resend_bounce_classification() -> None:
    assert resend.bounce_type({"type": "Permanent"}) == "hard"
    assert resend.bounce_type({"type": "Transient", "message": "user unknown"}) == "soft"
    assert resend.bounce_type({"message": "550 5.1.1 The email account does not exist"}) == "hard"
    assert resend.bounce_type({"message": "452 4.2.2 mailbox full"}) == "soft"
    assert resend.bounce_type({"message": "no such user, try again later"}) == "soft"
    assert resend.bounce_type({}) == "soft"


# -- retention -------------------------------------------------------------------------------


async def test_payloads_older_than_90_days_are_purged(site: Site) -> None:
    now = time.time() * 1000
    day = 24 * 3600 * 1000

    async def seed(ctx: Any) -> None:
        for age in (91, 89):
            await ctx.db.insert(
                "webhookPayloads",
                {"source": "ses", "rawPayload": str(age), "receivedAt": now - age * day},
            )

    await in_mutation(site.application, seed)
    outcome = await site.application.run_mutation(
        "providerWebhooks:purgePayloads", {}, internal=True
    )
    assert outcome.value == 1
    assert [row["rawPayload"] for row in await _rows(site, "webhookPayloads")] == ["89"]


# -- an organization's own endpoints ---------------------------------------------------------

ORG_TOPIC = "arn:aws:sns:us-east-1:210987654321:acme-ses"
ORG_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()


async def test_an_organizations_own_endpoints(site: Site, owner: Caller, signer: SnsSigner) -> None:
    organization_id = (await owner.query("organizations:getActive"))["_id"]
    _, other_id = await organization(site, "other")
    mine = await _sent(site, owner, "mine@example.com", "ses", "ses-mine")
    mine_resend = await _sent(site, owner, "mine2@example.com", "resend", "re-mine")
    theirs = await _sent(site, owner, "theirs@example.com", "ses", "ses-theirs")

    async def move_to_other(ctx: Any) -> None:
        await ctx.db.patch(theirs.send_id, {"organizationId": other_id})

    await in_mutation(site.application, move_to_other)
    ses_path, resend_path = (
        f"/webhooks/ses/{organization_id}",
        f"/webhooks/resend/{organization_id}",
    )
    response = await _post(site, ses_path, signer.message(TopicArn=ORG_TOPIC))
    assert (response.status_code, response.json()) == (
        503, {"error": "SES webhooks are not configured for this organization"},
    )  # fmt: skip
    with pytest.raises(ConvexError, match="^Resend webhook secret must be the whsec_"):
        await owner.mutation("emailProviders:saveResend", {"apiKey": "re_x", "webhookSecret": "x"})
    ses = {"region": "us-east-1", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s"}
    with pytest.raises(ConvexError, match="^SNS topic must be an ARN"):
        await owner.mutation("emailProviders:saveSes", {**ses, "snsTopicArn": "my-topic"})
    await owner.mutation("emailProviders:saveSes", {**ses, "snsTopicArn": ORG_TOPIC})
    await owner.mutation(
        "emailProviders:saveResend", {"apiKey": "re_x", "webhookSecret": ORG_SECRET}
    )
    # the instance's topic is not the organization's
    response = await _post(site, ses_path, signer.message(Message=_ses("Complaint", "ses-mine")))
    assert (response.status_code, response.json()) == (403, {"error": "Unknown TopicArn"})
    for message_id in ("ses-mine", "ses-theirs"):
        message = signer.message(TopicArn=ORG_TOPIC, Message=_ses("Complaint", message_id))
        assert (await _post(site, ses_path, message)).status_code == 200
    assert (await _send(owner, mine.send_id))["status"] == "complained"

    async def status_of_theirs(ctx: Any) -> str:
        return str((await ctx.db.get(theirs.send_id))["status"])

    assert await in_query(site.application, status_of_theirs) == "sent"  # not this org's
    event = json.dumps({"type": "email.complained", "data": {"email_id": "re-mine"}}).encode()
    response = await _post(site, resend_path, event, _svix(event))  # the instance's secret
    assert (response.status_code, response.json()) == (401, {"error": "Invalid Svix signature"})
    response = await _post(site, resend_path, event, _svix(event, ORG_SECRET))
    assert response.json() == {"success": True, "kind": "complained"}
    assert (await _send(owner, mine_resend.send_id))["status"] == "complained"
    response = await _post(site, f"/webhooks/resend/{other_id}", event, _svix(event, ORG_SECRET))
    assert response.status_code == 503  # the other organization has no Resend
    for path in ("/webhooks/resend/nope", f"/webhooks/ses/{mine.send_id}"):
        response = await _post(site, path, event)
        assert (response.status_code, response.json()) == (
            404,
            {"error": "Unknown webhook endpoint"},
        )
