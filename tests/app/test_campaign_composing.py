"""A campaign batch composed and signed in the signing processes (lib/campaigns/composing.py),
on SQLite and PostgreSQL: each message is its own send's (recipient, Message-ID, in
order), DKIM-verifies, and carries an unsubscribe link this instance accepts, also after
the instance's secret changed (a signing process composes under the server's current
settings, never under those of an earlier instance)."""

from __future__ import annotations

import email.parser
import email.policy
import re
from pathlib import Path
from typing import Any

import dkim
import pytest

from owlat.app.lib import instance
from owlat.app.lib.campaigns import composing
from owlat.app.lib.sending import signing
from owlat.app.lib.subscription_tokens import verify_token
from owlat.runtime.application import Application
from tests.app.campaign_setup import address
from tests.app.conftest import BASE_URL
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import dkim_dns
from tests.app.sending import test_journal
from tests.app.test_campaign_claims import _claim_args

owlat = test_journal.owlat  # the app, no scheduler (a fixture)
SENDS = 9  # more than signing.POOL_MIN: composed in the signing processes, in 3 chunks
_UNSUBSCRIBE = re.compile(r"<" + re.escape(BASE_URL) + r"/unsub/([^>]+)>")


async def test_a_batch_composed_in_the_signing_processes_is_each_sends_own_and_signed(
    owlat: Application, dns: DnsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SENDS >= signing.POOL_MIN
    monkeypatch.setattr(signing, "processes", lambda: 3)  # 3 chunks, whatever the cores
    team, list_id = await test_journal._team(owlat, dns, SENDS)
    ident = await test_journal.walked(owlat, team, list_id)
    claimed = await owlat.run_mutation(
        "campaignSends:claim", _claim_args(ident, "run"), internal=True
    )
    batch = claimed.value
    organization_id = team[2]
    _check(batch, await composing.compose_all(organization_id, batch, batch["sends"]), dns)
    assert signing._pool is not None  # the batch went to the signing processes
    # a new secret (another instance in this process): the signing processes follow it
    current = instance.current()
    instance.configure(
        tmp_path / "other", BASE_URL, secret="f" * 64, dns_nameservers=current.dns_nameservers
    )
    _check(batch, await composing.compose_all(organization_id, batch, batch["sends"]), dns)


def _check(batch: dict[str, Any], composed: list[Any], dns: DnsServer) -> None:
    parser = email.parser.BytesParser(policy=email.policy.default)
    lookup = dkim_dns(dns)
    assert [message.to for message in composed] == [address(i) for i in range(SENDS)]
    for claimed, message in zip(batch["sends"], composed, strict=True):
        assert message.message_id == claimed["messageId"]
        raw = message.raw
        assert dkim.verify(raw, dnsfunc=lookup)
        mail = parser.parsebytes(raw)
        assert mail["To"] == claimed["email"]
        (token,) = _UNSUBSCRIBE.findall(mail["List-Unsubscribe"])
        assert verify_token("unsubscribe", token) == claimed["contactId"]
