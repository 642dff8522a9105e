"""The mails auth sends (reset, verification, invitation, waitlist approval), through the
instance's email provider (the local outbox until real providers exist)."""

from __future__ import annotations

from urllib.parse import quote

from owlat.app.lib.email_providers.outbox import OutboxProvider
from owlat.app.lib.email_providers.types import EmailMessage, EmailProvider
from owlat.app.lib.instance import current


def provider() -> EmailProvider:
    return OutboxProvider(current().outbox_dir)


async def send(to: str, subject: str, text: str, key: str | None = None) -> None:
    await provider().send(EmailMessage(to=to, subject=subject, text=text, idempotency_key=key))


def reset_password_link(token: str) -> str:
    return f"{current().app_url}/auth/reset-password?token={quote(token)}"


def verify_email_link(token: str, callback_url: str | None) -> str:
    link = f"{current().base_url}/api/auth/verify-email?token={quote(token)}"
    return link + (f"&callbackURL={quote(callback_url)}" if callback_url else "")


def invitation_link(invitation_id: str) -> str:
    return f"{current().app_url}/invite/accept?id={quote(invitation_id)}"


def app_link(path: str) -> str:
    return current().app_url + path
