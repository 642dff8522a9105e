"""A campaign batch's messages as they go out, composed and DKIM-signed in the signing
processes (`sending/pooled_composition.py`, the path transactional claims take too), so
that the delivery worker's process only moves bytes and records outcomes.

Per claimed send (`compose`): the template personalized for the contact (compiled once
per template and language, cached per process), the campaign headers with the contact's
one-click unsubscribe URL, links and open pixel when the batch is tracked, MIME (one
`Composer` per chunk writes the header lines its messages share once), then the DKIM
signature with the From domain's key. The batch's fields but its sends travel once per
chunk; a small batch, or one whose signing process died, is composed here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from owlat.app.lib import instance
from owlat.app.lib.campaigns import content
from owlat.app.lib.email_providers.types import EmailMessage
from owlat.app.lib.sending import pooled_composition, sends
from owlat.app.lib.sending.composition import Composer, CompositionError, SendKind, kind_headers
from owlat.app.lib.sending.pooled_composition import Composed
from owlat.app.lib.subscription_tokens import make_token
from owlat.app.lib.tracking.links import tracked
from owlat.app.lib.transactional_emails import message_for, resolve_language


def delivery_key(send_id: str) -> str:
    """What providers dedupe a campaign send by (fixed: derived from its row)."""
    return f"campaign-{send_id}"


async def compose_all(
    organization_id: str,
    batch: Mapping[str, Any],
    claims: Sequence[Mapping[str, Any]],
    *,
    fields: bool = True,
) -> list[Composed]:
    """Each of `claims` (sends of the claimed `batch`) composed and signed with the
    batch's DKIM key, if any (module docstring), in order; `CompositionError` (raised)
    when that key does not open. `fields`: whether a provider of the route takes the
    bodies as fields (`pooled_composition`)."""
    dkim = batch["dkim"]
    signer = None if dkim is None else sends.signer_of(organization_id, dkim)
    key = pooled_composition.key_of(signer)
    shared = {name: value for name, value in batch.items() if name != "sends"}  # not twice
    one = functools.partial(compose, shared)
    items = [(key, claimed) for claimed in claims]
    return await pooled_composition.compose_all(one, items, fields=fields)


def compose(
    batch: Mapping[str, Any], claimed: Mapping[str, Any], composer: Composer | None = None
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
    return sends.compose({
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
    }, composer)  # fmt: skip
