"""SES notifications (through SNS, `sns.py`) as provider events (reference §6.1).

The SNS `Message` is SES's JSON; its kind is `notificationType` (notifications set on the
identity) or `eventType` (configuration set events); the message id is `mail.messageId`.
    Bounce     bounced: `bounce.bounceType` "Permanent" hard, else soft; the message is the
               first recipient's `diagnosticCode`; time `bounce.timestamp`
    Complaint  complained (`complaint.timestamp`)
    Delivery   delivered (`delivery.timestamp`)
anything else: no event.
"""

from __future__ import annotations

import json
from typing import Any

from owlat.app.lib.provider_webhooks.events import ProviderEvent, epoch_ms


def events(sns_message: str, now: float) -> list[ProviderEvent]:
    """The events of one SNS notification's `Message` (ValueError when it is not SES's)."""
    body = json.loads(sns_message)
    if not isinstance(body, dict):
        raise ValueError("not an SES notification")
    kind = body.get("notificationType") or body.get("eventType")
    mail = body.get("mail")
    message_id = mail.get("messageId") if isinstance(mail, dict) else None
    if kind not in ("Bounce", "Complaint", "Delivery"):
        return []
    if not isinstance(message_id, str) or not message_id:
        raise ValueError("SES notification without mail.messageId")
    detail: dict[str, Any] = body.get(kind.lower()) or {}
    at = epoch_ms(detail.get("timestamp"), now)
    if kind == "Delivery":
        return [ProviderEvent("delivered", message_id, at)]
    if kind == "Complaint":
        return [ProviderEvent("complained", message_id, at)]
    recipients = detail.get("bouncedRecipients") or [{}]
    diagnostic = recipients[0].get("diagnosticCode") if isinstance(recipients[0], dict) else ""
    hard = detail.get("bounceType") == "Permanent"
    return [
        ProviderEvent("bounced", message_id, at, "hard" if hard else "soft", str(diagnostic or ""))
    ]
