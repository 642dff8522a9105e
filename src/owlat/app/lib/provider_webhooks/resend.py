"""Resend webhooks (Svix signatures) as provider events (reference §6.2).

Verification: headers `svix-id`, `svix-timestamp`, `svix-signature` (missing: 401
"Missing Svix headers"); the timestamp within `TOLERANCE_SECONDS` of now; the signature
per `lib/standard_webhooks.py` with OWLAT_RESEND_WEBHOOK_SECRET (`whsec_...`).

Events (`data.email_id` is the message id, `created_at` the time):
    email.bounced     bounced: hard when `data.bounce.type` is "Permanent", soft when it is
                      "Transient"; without a type, hard when the message reads like a
                      permanent failure (`_HARD`) and not like a temporary one (`_SOFT`)
    email.complained  complained
    email.delivered   delivered (upstream ignores it; Owlat records the delivery)
anything else: no event.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Literal

from owlat.app.lib.provider_webhooks.events import ProviderEvent, Refused, epoch_ms
from owlat.app.lib.standard_webhooks import matches, sign

TOLERANCE_SECONDS = 300
_HARD = re.compile(
    r"does not exist|user unknown|unknown user|no such user|mailbox not found|"
    r"mailbox unavailable|invalid recipient|recipient rejected|address rejected|5\.1\.1",
    re.IGNORECASE,
)
_SOFT = re.compile(r"mailbox full|quota|try again|greylist|temporar|\b4\.\d+\.\d+", re.IGNORECASE)
_KINDS = {"email.bounced": "bounced", "email.complained": "complained",
          "email.delivered": "delivered"}  # fmt: skip


def verify(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Accept a Svix-signed request or raise `Refused` (module docstring)."""
    message_id = headers.get("svix-id")
    timestamp = headers.get("svix-timestamp")
    signatures = headers.get("svix-signature")
    if not message_id or not timestamp or not signatures:
        raise Refused(401, "Missing Svix headers")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        raise Refused(401, "Svix timestamp out of tolerance")
    if not matches(signatures, sign(secret, message_id, timestamp, body)):
        raise Refused(401, "Invalid Svix signature")


def bounce_type(bounce: Mapping[str, Any]) -> Literal["hard", "soft"]:
    declared = str(bounce.get("type") or "").lower()
    if declared in ("permanent", "hard"):
        return "hard"
    if declared in ("transient", "soft", "undetermined"):
        return "soft"
    message = str(bounce.get("message") or "")
    return "hard" if _HARD.search(message) and not _SOFT.search(message) else "soft"


def events(body: Any, now: float) -> list[ProviderEvent]:
    """The events of one Resend webhook body (ValueError when it has no shape we know)."""
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise ValueError("not a Resend event")
    kind = _KINDS.get(body["type"])
    if kind is None:
        return []
    data = body.get("data")
    message_id = data.get("email_id") if isinstance(data, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise ValueError("Resend event without data.email_id")
    assert isinstance(data, dict)
    at = epoch_ms(body.get("created_at"), now)
    if kind == "bounced":
        found = data.get("bounce")
        bounce: dict[str, Any] = found if isinstance(found, dict) else {}
        return [
            ProviderEvent(
                "bounced", message_id, at, bounce_type(bounce), str(bounce.get("message") or "")
            )
        ]
    return [ProviderEvent(kind, message_id, at)]  # type: ignore[arg-type]
