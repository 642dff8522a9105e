"""The instance's own mails (verification, password reset, sign-up notice, invitation,
waitlist approval, subscription confirmation) and their links.

`send` puts one through the one send path (`lib/sending/sends.py`) as a system mail: a
`transactionalSends` row of kind `system` without an organization (none exists yet at
sign-up, and these are the instance's mails, not a tenant's), so no organization's query,
counter or webhook ever sees it. From `Owlat <no-reply@owlat.local>`, through the local
outbox (the instance's provider), recorded `queued`, then delivered by the calling action
at once (`sending` → `sent` or `failed`, as §10.1); an action that dies in between leaves
the row to `recover_stalled`, which sends it again with the same delivery key (the outbox
keeps one file per key: never twice).
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from owlat.app.lib.instance import current
from owlat.app.lib.redirects import absolute_url
from owlat.app.lib.sending.sends import deliver_sends, lease_ms
from owlat.app.lib.tokens import derived_token
from owlat.runtime import ActionCtx, internal

SENDER_NAME = "Owlat"


async def send(ctx: ActionCtx, to: str, subject: str, text: str, key: str | None = None) -> str:
    """Send a system mail (module docstring) and deliver it before returning; its send id.
    `key`: the same key again writes no second mail to the outbox."""
    args = {"to": to, "subject": subject, "text": text}
    if key is not None:
        args["deliveryKey"] = hashlib.sha256(key.encode()).hexdigest()[:32]
    send_id: str = await ctx.run_mutation(internal.transactional_sends.enqueue_system, args)
    await deliver_sends(ctx, [send_id], lease_ms())
    return send_id


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
