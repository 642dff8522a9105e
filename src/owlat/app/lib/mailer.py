"""The mails auth sends (reset, verification, invitation, waitlist approval), through the
instance's email provider (the local outbox until real providers exist)."""

from __future__ import annotations

from urllib.parse import quote

from owlat.app.lib.email_providers.outbox import OutboxProvider
from owlat.app.lib.email_providers.types import EmailMessage, EmailProvider
from owlat.app.lib.instance import current
from owlat.app.lib.redirects import absolute_url
from owlat.app.lib.tokens import derived_token


def provider() -> EmailProvider:
    return OutboxProvider(current().outbox_dir)


async def send(to: str, subject: str, text: str, key: str | None = None) -> None:
    await provider().send(EmailMessage(to=to, subject=subject, text=text, idempotency_key=key))


def reset_password_link(token: str, redirect_to: str | None = None) -> str:
    """The reset page with the token: `redirect_to` (a checked target) or the web app's."""
    page = absolute_url(redirect_to) if redirect_to else f"{current().app_url}/auth/reset-password"
    before_fragment, hash_, fragment = page.partition("#")
    separator = "&" if "?" in before_fragment else "?"
    return f"{before_fragment}{separator}token={quote(token)}{hash_}{fragment}"


def verify_email_link(token: str, callback_url: str | None) -> str:
    link = f"{current().base_url}/api/auth/verify-email?token={quote(token)}"
    return link + (f"&callbackURL={quote(callback_url)}" if callback_url else "")


def invitation_token(invitation_id: str, email: str) -> str:
    """The secret of an invitation's link: whoever presents it has read the mail sent to
    `email`, which verifies that address (`invitations.py`)."""
    return derived_token(current().secret, "invitation", invitation_id, email)


def invitation_link(invitation_id: str, email: str) -> str:
    token = invitation_token(invitation_id, email)
    return f"{current().app_url}/invite/accept?id={quote(invitation_id)}&token={token}"


def app_link(path: str) -> str:
    return current().app_url + path
