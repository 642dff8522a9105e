"""Roles (owner, admin, editor) and what each may do.

Start: upstream's permission map (reference §1.3). One change, on purpose: **editors do
not send or schedule campaigns** (`campaigns:send`, `campaigns:schedule`). Upstream's code
grants them, its docs do not; a send to a whole list cannot be undone, so it needs an
admin. Editors still draft and edit campaigns (`campaigns:manage`), annotate contacts and
send test emails. `organization:delete` is the owner's alone.

A second change: **editors edit draft templates** (`templates:edit`: create, update,
translate, duplicate, restore a version, delete, all while a template is a draft).
Publishing, unpublishing, any change to a published template and saved blocks (a change
re-renders every template that links the block, published ones too) stay
`templates:manage`, the admins'.
"""

from __future__ import annotations

from typing import Final, Literal

from owlat.app.lib.errors import admin_required, forbidden

Role = Literal["owner", "admin", "editor"]
ROLES: Final = ("owner", "admin", "editor")

_ALL: Final = frozenset({"owner", "admin", "editor"})
_ADMINS: Final = frozenset({"owner", "admin"})
_OWNER: Final = frozenset({"owner"})

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "campaigns:manage": _ALL,
    "campaigns:send": _ADMINS,
    "campaigns:schedule": _ADMINS,
    "templates:manage": _ADMINS,
    "templates:edit": _ALL,
    "automations:manage": _ADMINS,
    # drafting automations and pausing them: every role; activating (it sends) admins
    "automations:edit": _ALL,
    "topics:manage": _ADMINS,
    # mailing lists and their memberships: every role (editors curate lists too)
    "lists:manage": _ALL,
    "segments:manage": _ADMINS,
    "media:manage": _ADMINS,
    "shareLinks:manage": _ADMINS,
    "imports:manage": _ADMINS,
    "contacts:manage": _ADMINS,
    "contacts:annotate": _ALL,
    "organization:manage": _ADMINS,
    "settings:manage": _ADMINS,
    "organization:delete": _OWNER,
    "emails:test": _ALL,
    # the seed's shorthand: requirePermission(role, 'admin')
    "admin": _ADMINS,
    "owner": _OWNER,
}


def is_admin_role(role: str | None) -> bool:
    return role in _ADMINS


def has_permission(role: str | None, permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise ValueError(f"Unknown permission {permission!r}; known: {sorted(PERMISSIONS)}")
    return role in PERMISSIONS[permission]


def require_permission(role: str | None, permission: str) -> None:
    """Raise unless `role` has `permission` ("Admin access required" for admin rights)."""
    if has_permission(role, permission):
        return
    if PERMISSIONS[permission] == _ADMINS:
        raise admin_required()
    if PERMISSIONS[permission] == _OWNER:
        raise forbidden("OWNER_ACCESS_REQUIRED", "Owner access required")
    raise forbidden("FORBIDDEN", f"Permission denied: {permission}")
