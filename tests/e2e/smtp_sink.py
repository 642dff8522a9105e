"""What the crash tests share: the owner of an instance signed up over HTTP, set up in
process (the server stopped) to send through SMTP to a sink, and what the sink got."""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import Envelope

from owlat.runtime.application import Application
from owlat.runtime.testing import in_query, open_test_app
from tests.app.campaign_setup import list_audience, ready_campaign
from tests.app.conftest import Caller
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import configure, smtp_domain


@contextlib.asynccontextmanager
async def smtp_owner(
    data_dir: Path, port: int, database_url: str, domain: str
) -> AsyncIterator[tuple[Application, Caller, str]]:
    """The app opened in process on `data_dir` (no scheduler: the server runs the jobs
    it schedules), its owner (the one user) and organization, SMTP to 127.0.0.1:`port`
    and `domain` a verified sending domain (DNS on loopback)."""
    with DnsServer.running() as dns:
        configure(data_dir, dns)
        async with open_test_app(
            "owlat.app", data_dir, scheduler_parallelism=None, database_url=database_url
        ) as owlat:

            async def owner_of(ctx: Any) -> dict[str, Any]:
                user = next(u for u in await ctx.db.query("users").collect())
                member = next(m for m in await ctx.db.query("members").collect())
                return {
                    "userId": user["_id"],
                    "email": user["email"],
                    "org": member["organizationId"],
                }

            found = await in_query(owlat, owner_of)
            session = await owlat.run_mutation(
                "auth:createSession",
                {"userId": found["userId"], "tokenHash": "test"},
                internal=True,
            )
            owner = Caller(owlat, found["userId"], session.value["_id"], found["email"])
            await owner.mutation("organizations:setActive", {"organizationId": found["org"]})
            await owner.mutation(
                "emailProviders:saveSmtp",
                {"host": "127.0.0.1", "port": port, "security": "none"},
            )
            await smtp_domain(owner, dns, domain)
            yield owlat, owner, found["org"]


async def sent_campaign(
    owlat: Application, owner: Caller, organization_id: str, contacts: int, sender: str
) -> str:
    """A campaign from `sender` to a new list of `contacts` contacts, sent (its walk and
    delivery are scheduled jobs); its id."""
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
    )
    await list_audience(owlat, organization_id, list_id, contacts)
    campaign_id = await ready_campaign(owner, list_id, sender)
    await owner.mutation("campaigns:send", {"campaignId": campaign_id})
    return campaign_id


def received(envelopes: list[Envelope]) -> list[tuple[str, str]]:
    """(recipient, Message-ID) of each message a sink accepted."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    return [
        (
            envelope.rcpt_tos[0],
            str(parser.parsebytes(envelope.original_content or b"")["Message-ID"]),
        )
        for envelope in envelopes
    ]
