"""Owlat's HTTP routes on the site port: one table.

/api/auth/*   BetterAuth-compatible accounts, sessions, organizations and JWT endpoints
/unsub/*, /prefs/*, /confirm/doi*, /unsubscribe, /preferences, /confirm
              public subscription links (tokens from mails; no session)
/share/*, /preview/*   share links of templates: the snapshot as JSON, and as a page
/archive/*, /archive   a campaign's "view in browser" archive: JSON, and the page
/dev/outbox   the local outbox's messages (`owlat dev` only)
/t/o/*, /t/c/*   open pixel and click redirects (tracking)
/webhooks/ses[/<org>], /webhooks/resend[/<org>]   provider events (bounces, complaints,
              deliveries), the instance's or one organization's
/forms/<formId>   public sign-up form submissions
"""

from __future__ import annotations

from owlat.app import (
    archive_routes,
    form_routes,
    outbox_pages,
    provider_webhooks,
    share_routes,
    subscription_pages,
    subscription_routes,
    tracking,
)
from owlat.app.auth_routes import accounts, organizations, sessions, wire
from owlat.app.rest_api import routes as rest_api_routes
from owlat.runtime import HttpRouter

http = HttpRouter()

AUTH = "/api/auth"
_ROUTES = (
    # path                                    method  handler
    ("/sign-up/email", "POST", accounts.sign_up),
    ("/sign-in/email", "POST", accounts.sign_in),
    ("/sign-out", "POST", accounts.sign_out),
    ("/change-password", "POST", accounts.change_password),
    ("/request-password-reset", "POST", accounts.request_password_reset),
    ("/forget-password", "POST", accounts.request_password_reset),
    ("/reset-password", "POST", accounts.reset_password),
    ("/send-verification-email", "POST", accounts.send_verification_email),
    ("/verify-email", "GET", accounts.verify_email),
    ("/get-session", "GET", sessions.get_session),
    ("/list-sessions", "GET", sessions.list_sessions),
    ("/revoke-session", "POST", sessions.revoke_session),
    ("/revoke-sessions", "POST", sessions.revoke_sessions),
    ("/revoke-other-sessions", "POST", sessions.revoke_other_sessions),
    ("/token", "GET", sessions.token),
    ("/jwks", "GET", sessions.jwks),
    ("/organization/create", "POST", organizations.create),
    ("/organization/update", "POST", organizations.update),
    ("/organization/delete", "POST", organizations.delete),
    ("/organization/list", "GET", organizations.list_organizations),
    ("/organization/set-active", "POST", organizations.set_active),
    ("/organization/get-full-organization", "GET", organizations.get_full_organization),
    ("/organization/list-members", "GET", organizations.list_members),
    ("/organization/get-active-member", "GET", organizations.get_active_member),
    ("/organization/invite-member", "POST", organizations.invite_member),
    ("/organization/accept-invitation", "POST", organizations.accept_invitation),
    ("/organization/reject-invitation", "POST", organizations.reject_invitation),
    ("/organization/cancel-invitation", "POST", organizations.cancel_invitation),
    ("/organization/get-invitation", "GET", organizations.get_invitation),
    ("/organization/list-invitations", "GET", organizations.list_invitations),
    ("/organization/list-user-invitations", "GET", organizations.list_user_invitations),
    ("/organization/update-member-role", "POST", organizations.update_member_role),
    ("/organization/remove-member", "POST", organizations.remove_member),
    ("/organization/leave", "POST", organizations.leave),
)

for path, method, handler in _ROUTES:
    http.route(path=AUTH + path, method=method, handler=handler)
http.route(path_prefix=AUTH + "/", method="OPTIONS", handler=wire.preflight)

# /api/v1/*   the public REST API (API keys): contacts, events, mailing-list membership
rest_api_routes.register(http)

# /unsub/*, /prefs/*, /confirm/doi*   public subscription token endpoints (JSON)
# /unsubscribe, /preferences, /confirm   the pages recipients land on from their mail
# /share/{token}, /preview/{token}   share links (JSON, page)
for route, method, handler in (
    *subscription_routes.routes(),
    *subscription_pages.routes(),
    *share_routes.routes(),
    *archive_routes.routes(),
):
    if route.endswith("/"):
        http.route(path_prefix=route, method=method, handler=handler)
    else:
        http.route(path=route, method=method, handler=handler)

# /dev/outbox, /dev/outbox/<name>[/html]   the local outbox (404 unless `owlat dev`)
for route, method, handler in outbox_pages.routes():
    if route.endswith("/"):
        http.route(path_prefix=route, method=method, handler=handler)
    else:
        http.route(path=route, method=method, handler=handler)

# /t/o/{sendId}, /t/c/{sendId}/{target}/{sig}   open pixel, signed click redirects (under
# `owlat serve`/`dev`, answered alike by a lean route before this table: site_paths.py)
for route, method, handler in tracking.routes():
    http.route(path_prefix=route, method=method, handler=handler)

# /webhooks/ses, /webhooks/resend   provider events (SNS and Svix signatures checked)
for route, method, handler in provider_webhooks.routes():
    if route.endswith("/"):
        http.route(path_prefix=route, method=method, handler=handler)
    else:
        http.route(path=route, method=method, handler=handler)

# /forms/<formId>   public sign-up form submissions (form_endpoints.py)
for route, method, handler in form_routes.routes():
    http.route(path_prefix=route, method=method, handler=handler)
