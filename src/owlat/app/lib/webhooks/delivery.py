"""One delivery attempt of a webhook event: its request and what its answer changes.

Request (reference §5, plus Standard Webhooks): `POST <url>` with the logged body and
    Content-Type: application/json       User-Agent: Owlat-Webhooks/1.0
    webhook-id: <delivery log id>        (the same on every attempt: receivers dedupe by it)
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(key of the secret, id.timestamp.body)>
    X-Webhook-Id: <webhook id>           X-Timestamp: <unix seconds>
    X-Signature: <hex HMAC-SHA256(the whole secret string, body)>   (upstream's)

Attempts: the first at once, then after `RETRY_DELAYS` (60 s, 300 s): `pending` →
`retrying` (with `nextRetryAt`) → `success` on any 2xx, else `failed` after the third.
A disabled or deleted webhook fails its deliveries at once. A webhook whose deliveries
fail after every attempt `DISABLE_AFTER` times in a row is turned off (`isActive` false,
`disabledReason`); a success resets the count.

    attempt answer   attempts left   log becomes                 webhook
    2xx              -               success, completedAt        consecutiveFailures 0
    other / none     yes             retrying, next attempt      -
    other / none     no              failed, completedAt         consecutiveFailures + 1,
                                                                 off at DISABLE_AFTER
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

from owlat.app.lib import standard_webhooks
from owlat.app.lib.webhooks.targets import Answer

RETRY_DELAYS_MS: Final = (60_000, 300_000)
DISABLE_AFTER: Final = 10
USER_AGENT: Final = "Owlat-Webhooks/1.0"


def headers(log_id: str, webhook_id: str, secret: str, body: bytes, now_s: int) -> dict[str, str]:
    """The request headers of one attempt (module docstring)."""
    timestamp = str(now_s)
    signature = standard_webhooks.sign(secret, log_id, timestamp, body)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": log_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
        "x-webhook-id": webhook_id,
        "x-timestamp": timestamp,
        "x-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def log_patch(log: Mapping[str, Any], answer: Answer, now: float) -> dict[str, Any]:
    """The delivery log after an attempt that got `answer` (the table above)."""
    patch: dict[str, Any] = {
        "attemptedAt": now,
        "durationMs": round(answer.duration_ms, 1),
        "responseBody": answer.body,
        "errorMessage": answer.error,
    }
    if answer.status is not None:
        patch["httpStatusCode"] = answer.status
    if answer.ok:
        return {**patch, "status": "success", "completedAt": now}
    attempt = int(log["attemptNumber"])
    if attempt < log["maxAttempts"] and attempt <= len(RETRY_DELAYS_MS):
        due = now + RETRY_DELAYS_MS[attempt - 1]
        return {
            **patch,
            "status": "retrying",
            "attemptNumber": attempt + 1,
            "nextRetryAt": due,
            "dueAt": due,
        }
    return {**patch, "status": "failed", "completedAt": now}


def webhook_patch(webhook: Mapping[str, Any], status: str, now: float) -> dict[str, Any]:
    """The webhook after one of its deliveries ended `status` (success or failed)."""
    if status == "success":
        return {"consecutiveFailures": 0} if webhook["consecutiveFailures"] else {}
    failures = int(webhook["consecutiveFailures"]) + 1
    if failures < DISABLE_AFTER:
        return {"consecutiveFailures": failures}
    return {
        "consecutiveFailures": failures,
        "isActive": False,
        "disabledReason": f"Turned off after {failures} deliveries in a row failed",
        "updatedAt": now,
    }
