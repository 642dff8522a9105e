"""A campaign batch's messages as they go out, composed and DKIM-signed in the signing
processes (`sending/signing.py`), so that the delivery worker's process only moves bytes
and records outcomes.

Per claimed send (`compose`): the template personalized for the contact (compiled once
per template and language, cached per process), the campaign headers with the contact's
one-click unsubscribe URL, links and open pixel when the batch is tracked, MIME (one
`Composer` per chunk writes the header lines its messages share once), then the DKIM
signature with the From domain's key. `compose_all` hands a batch to the signing
processes in a few chunks (one per process: one IPC round trip each); what a signing
process needs besides the batch travels with each chunk: the site's URLs and the
instance secret the unsubscribe tokens and click links are signed with (`_Site`), and
the DKIM key's PEM (unsealed here, as `signing.sign_all` gets it). The messages are
byte for byte what composing here makes (a small batch, or one whose signing process
died, is composed here: `signing.in_pool`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from owlat.app.lib import instance
from owlat.app.lib.campaigns import content
from owlat.app.lib.email_providers.types import EmailMessage
from owlat.app.lib.sending import sends, signing
from owlat.app.lib.sending.composition import Composer, CompositionError, SendKind, kind_headers
from owlat.app.lib.subscription_tokens import make_token
from owlat.app.lib.tracking.links import tracked
from owlat.app.lib.transactional_emails import message_for, resolve_language

Composed = EmailMessage | CompositionError  # a send's message, or why it has none


def delivery_key(send_id: str) -> str:
    """What providers dedupe a campaign send by (fixed: derived from its row)."""
    return f"campaign-{send_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Site:
    """What composing reads of the instance (`instance.current()`), for a signing process."""

    base_url: str
    app_url: str
    secret: str

    def installed(self) -> None:
        """In a signing process: make this the process's instance (once per change)."""
        if _installed.get("site") != self:
            instance.configure(Path("."), self.base_url, app_url=self.app_url, secret=self.secret)
            _installed["site"] = self


_installed: dict[str, _Site] = {}


async def compose_all(
    organization_id: str, batch: Mapping[str, Any], claims: Sequence[Mapping[str, Any]]
) -> list[Composed]:
    """Each of `claims` (sends of the claimed `batch`) composed and signed with the
    batch's DKIM key, if any (module docstring), in order; `CompositionError` (raised)
    when that key does not open."""
    dkim = batch["dkim"]
    signer = None if dkim is None else sends.signer_of(organization_id, dkim)
    key = None if signer is None else (signer.domain, signer.selector, signer.private_key_pem)
    now = time.time()
    current = instance.current()
    site = _Site(current.base_url, current.app_url, current.secret.decode())
    shared = {name: value for name, value in batch.items() if name != "sends"}  # not twice
    here = functools.partial(_composed, organization_id, shared, key, now)
    remote = functools.partial(_composed_there, site, here)
    return await signing.in_pool(remote, here, list(claims))


def _composed_there(
    site: _Site,
    here: Callable[[Sequence[Mapping[str, Any]]], list[Composed]],
    claims: Sequence[Mapping[str, Any]],
) -> list[Composed]:
    """In a signing process: `here` (`_composed`) under the server's instance settings."""
    site.installed()
    return here(claims)


def _composed(
    organization_id: str,
    batch: Mapping[str, Any],
    key: tuple[str, str, str] | None,
    now: float,
    claims: Sequence[Mapping[str, Any]],
) -> list[Composed]:
    composer = Composer()  # the chunk's shared header lines, written once
    signer = None if key is None else signing.signer(*key)
    done: list[Composed] = []
    for claimed in claims:
        try:
            message = compose(organization_id, batch, claimed, composer)
        except CompositionError as error:
            done.append(error)
            continue
        if signer is not None:
            raw = message.raw or b""
            message = dataclasses.replace(message, raw=signer.signature(raw, now=now) + raw)
        done.append(message)
    return done


def compose(
    organization_id: str,
    batch: Mapping[str, Any],
    claimed: Mapping[str, Any],
    composer: Composer | None = None,
) -> EmailMessage:
    """One claimed send composed, unsigned (module docstring; `sends.compose`)."""
    template = content.template_of(batch, claimed)  # the send's A/B variant
    if template is None:
        raise CompositionError("the campaign's content snapshot is missing")
    language = resolve_language(template, None, claimed["language"])
    variables = {"email": claimed["email"], **claimed["variables"]}
    message = message_for(template, language, variables, claimed["contactId"])
    token = make_token("unsubscribe", claimed["contactId"])
    base = instance.current().base_url.rstrip("/")
    headers = kind_headers(
        SendKind.CAMPAIGN,
        unsubscribe_url=f"{base}/unsub/{token}",
        list_id=batch["listId"],
        feedback_id=batch["feedbackId"],
    )
    return sends.compose(organization_id, {
        "email": claimed["email"],
        "subject": message.subject,
        "html": tracked(
            {"html": message.html, "tracking": batch["tracking"], "sendId": claimed["sendId"]}
        ),
        "text": message.text,
        "fromAddress": batch["fromAddress"],
        "replyTo": batch["replyTo"],
        "headers": headers,
        "deliveryKey": delivery_key(claimed["sendId"]),
        "messageId": claimed["messageId"],
        "dkim": None,  # signed in `_composed`, with the signer made once per key
    }, composer)  # fmt: skip
