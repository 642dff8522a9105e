"""`formEndpoints:*`: public sign-up forms of the organization (reference §2.5, §7.7);
the public endpoint `POST /forms/<id>` is app/form_routes.py.

Management needs `organization:manage` (owners, admins): a form writes contacts.

    create({name, listId?, fields?, redirectUrl?, honeypotFieldName?, doubleOptIn?,
            isActive?}) → formId
    update({formId, ...the same}), remove({formId}) (its submissions go with it),
    list(), getSubmissions({formId, paginationOpts}) (newest first)

`fields`: at most 20 `{key, label, type: email|text|checkbox, required}`, keys unique
(letters, digits, `_` `-`, ≤ 64), exactly one email field (default: a required `email`).
`redirectUrl`: http(s) without credentials, ≤ 2000 characters; the only place a browser
is sent after a submission (never a URL from the request). `doubleOptIn` needs a list.

A submission (`submit`, internal, one mutation): at most 5 per minute per client IP and
form (`rateLimits`); form missing → 404, inactive → 403; values (strings, at most 50
keys of ≤ 64 characters) cut to 10 000 characters; a filled honeypot → recorded `spam`,
answered as a success; field checks (required, email valid) → `invalid`, 400 with the
errors joined by "; "; the contact (source `form`) is created with firstName / lastName
when new; with a list: subscribed (double opt-in when the list or the form asks) →
`success`, `pending_confirmation` or `duplicate` (already a member); without: `success`
for a new contact, else `duplicate`. Counters `submissionCount` and
`successfulSubmissionCount` follow. A daily cron scrubs IP and user agent from submissions
older than 90 days.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from owlat.app.lib.audience import PAGINATION_OPTS, live_document, organization_rows, page_options
from owlat.app.lib.contacts import create_contact, live_by_email
from owlat.app.lib.emails import normalize_email
from owlat.app.lib.errors import AppError, conflict, invalid, not_found
from owlat.app.lib.list_subscriptions import subscribe
from owlat.app.lib.rate_limits import window_count
from owlat.app.lib.session_organization import get_mutation_context, now_ms
from owlat.runtime import (
    UNDEFINED,
    MutationCtx,
    QueryCtx,
    internal,
    internal_mutation,
    mutation,
    query,
    v,
)

PERMISSION = "organization:manage"
MAX_NAME = 200
MAX_URL = 2000
MAX_FIELDS = 20
MAX_FORMS = 100
MAX_KEYS = 50
MAX_KEY = 64
MAX_VALUE = 10_000
SUBMISSIONS_PER_MINUTE = 5
RETENTION_MS = 90 * 86_400_000
BATCH = 200
DEFAULT_FIELDS = [{"key": "email", "label": "Email", "type": "email", "required": True}]
DEFAULT_HONEYPOT = "_hp_field"
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FIELD = v.object(
    {
        "key": v.string(),
        "label": v.string(),
        "type": v.union(v.literal("email"), v.literal("text"), v.literal("checkbox")),
        "required": v.boolean(),
    }
)
SETTINGS = {
    "name": v.optional(v.string()),
    "listId": v.optional(v.union(v.string(), v.null())),
    "fields": v.optional(v.array(FIELD)),
    "redirectUrl": v.optional(v.union(v.string(), v.null())),
    "honeypotFieldName": v.optional(v.string()),
    "doubleOptIn": v.optional(v.boolean()),
    "isActive": v.optional(v.boolean()),
}


def _fields(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not 1 <= len(fields) <= MAX_FIELDS:
        raise invalid("INVALID_FIELDS", f"A form has 1 to {MAX_FIELDS} fields")
    keys = [field["key"] for field in fields]
    bad = next((key for key in keys if not _KEY.match(key)), None)
    if bad is not None:
        raise invalid("INVALID_FIELDS", f"Field key {bad!r}: letters, digits, _ and - (≤ 64)")
    if len(set(keys)) != len(keys):
        raise invalid("INVALID_FIELDS", "Field keys must be unique")
    if sum(field["type"] == "email" for field in fields) != 1:
        raise invalid("INVALID_FIELDS", "A form needs exactly one email field")
    for field in fields:
        if not 1 <= len(field["label"].strip()) <= MAX_NAME:
            raise invalid("INVALID_FIELDS", f"Field {field['key']!r}: label of 1 to {MAX_NAME}")
    return [{**field, "label": field["label"].strip()} for field in fields]


def _redirect(url: str) -> str:
    parts = urlsplit(url.strip())
    if (
        len(url) > MAX_URL
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
    ):
        raise invalid(
            "INVALID_REDIRECT_URL",
            f"redirectUrl must be an http(s) URL without credentials, ≤ {MAX_URL} characters",
        )
    return url.strip()


async def _settings(ctx: QueryCtx, organization_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """The checked settings among `args` (None clears listId / redirectUrl)."""
    out: dict[str, Any] = {}
    if "name" in args:
        name = args["name"].strip()
        if not 1 <= len(name) <= MAX_NAME:
            raise invalid("INVALID_NAME", f"Name must be 1 to {MAX_NAME} characters")
        out["name"] = name
    if "listId" in args:
        list_id = args["listId"]
        if (
            list_id is not None
            and await live_document(ctx, "mailingLists", organization_id, list_id) is None
        ):
            raise not_found("Mailing list")
        out["listId"] = UNDEFINED if list_id is None else list_id
    if "fields" in args:
        out["fields"] = _fields(args["fields"])
    if "redirectUrl" in args:
        url = args["redirectUrl"]
        out["redirectUrl"] = UNDEFINED if url is None else _redirect(url)
    if "honeypotFieldName" in args:
        honeypot = args["honeypotFieldName"]
        if not _KEY.match(honeypot):
            raise invalid("INVALID_HONEYPOT", "honeypotFieldName: letters, digits, _ and - (≤ 64)")
        out["honeypotFieldName"] = honeypot
    for flag in ("doubleOptIn", "isActive"):
        if flag in args:
            out[flag] = args[flag]
    return out


def _check(form: dict[str, Any]) -> None:
    if form.get("doubleOptIn") and form.get("listId") in (None, UNDEFINED):
        raise invalid("DOUBLE_OPT_IN_NEEDS_LIST", "Double opt-in needs a mailing list")
    if form["honeypotFieldName"] in {field["key"] for field in form["fields"]}:
        raise invalid("INVALID_HONEYPOT", "The honeypot field must not be a form field")


async def _form(ctx: QueryCtx, organization_id: str, form_id: str) -> dict[str, Any]:
    row = await live_document(ctx, "formEndpoints", organization_id, form_id)
    if row is None:
        raise not_found("Form")
    return row


@mutation(args={**SETTINGS, "name": v.string()})
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    context = await get_mutation_context(ctx, require=PERMISSION)
    settings = await _settings(ctx, context.team_id, args)
    if len(await organization_rows(ctx, "formEndpoints", context.team_id)) >= MAX_FORMS:
        raise conflict("TOO_MANY_FORMS", f"An organization has at most {MAX_FORMS} forms")
    now = now_ms()
    row: dict[str, Any] = {
        "organizationId": context.team_id,
        "fields": DEFAULT_FIELDS,
        "honeypotFieldName": DEFAULT_HONEYPOT,
        "isActive": True,
        "doubleOptIn": False,
        **settings,
        "submissionCount": 0,
        "successfulSubmissionCount": 0,
        "createdBy": context.user_id,
        "createdAt": now,
        "updatedAt": now,
    }
    row = {k: val for k, val in row.items() if val is not UNDEFINED}
    _check(row)
    return str(await ctx.db.insert("formEndpoints", row))


@mutation(args={**SETTINGS, "formId": v.id("formEndpoints")})
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _form(ctx, context.team_id, args["formId"])
    changes = {**await _settings(ctx, context.team_id, args), "updatedAt": now_ms()}
    updated = {k: val for k, val in {**row, **changes}.items() if val is not UNDEFINED}
    _check(updated)
    await ctx.db.patch(row["_id"], changes)
    return updated


@mutation(args={"formId": v.id("formEndpoints")})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _form(ctx, context.team_id, args["formId"])
    submissions = await (
        ctx.db.query("formSubmissions")
        .with_index("by_form", lambda q: q.eq("formEndpointId", row["_id"]))
        .collect()
    )
    for submission in submissions:
        await ctx.db.delete(submission["_id"])
    await ctx.db.delete(row["_id"])


@query(args={})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    rows = await organization_rows(ctx, "formEndpoints", context.team_id)
    return sorted(rows, key=lambda row: row["createdAt"])


@query(args={"formId": v.id("formEndpoints"), "paginationOpts": PAGINATION_OPTS})
async def get_submissions(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _form(ctx, context.team_id, args["formId"])
    return await (
        ctx.db.query("formSubmissions")
        .with_index("by_form", lambda q: q.eq("formEndpointId", row["_id"]))
        .order("desc")
        .paginate(page_options(args["paginationOpts"]))
    )


# -- submissions -----------------------------------------------------------------------------


def _errors(form: dict[str, Any], data: dict[str, str]) -> tuple[list[str], str | None]:
    """The field errors of `data` and its normalized email."""
    errors: list[str] = []
    email: str | None = None
    for field in form["fields"]:
        value = data.get(field["key"], "").strip()
        if not value:
            if field["required"]:
                errors.append(f"{field['label']} is required")
            continue
        if field["type"] == "email":
            try:
                email = normalize_email(value)
            except AppError:
                errors.append(f"{field['label']} must be a valid email address")
    if email is None and not errors:
        errors.append("Email is required")
    return errors, email


async def _record(
    ctx: MutationCtx,
    form: dict[str, Any],
    args: dict[str, Any],
    data: dict[str, str],
    status: str,
    contact_id: str | None = None,
    error: str | None = None,
) -> None:
    row: dict[str, Any] = {
        "organizationId": form["organizationId"],
        "formEndpointId": form["_id"],
        "data": data,
        "status": status,
        "submittedAt": now_ms(),
    }
    optional = {
        "contactId": contact_id,
        "errorMessage": error,
        "ipAddress": args.get("ipAddress"),
        "userAgent": (args.get("userAgent") or "")[:500] or None,
    }
    row.update({k: val for k, val in optional.items() if val is not None})
    await ctx.db.insert("formSubmissions", row)
    await ctx.db.patch(
        form["_id"],
        {
            "submissionCount": form["submissionCount"] + 1,
            "successfulSubmissionCount": form["successfulSubmissionCount"] + (status == "success"),
        },
    )


@internal_mutation(
    args={
        "formId": v.string(),
        "data": v.record(v.string(), v.string()),
        "ipAddress": v.string(),
        "userAgent": v.optional(v.string()),
    }
)
async def submit(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """One submission (module docstring) → {status (HTTP), outcome?, message, retryAfter?,
    redirectUrl?}."""
    key = f"form:{args['ipAddress']}:{args['formId'][:64]}"
    count, window_end = await window_count(ctx, key, 60_000)
    if count > SUBMISSIONS_PER_MINUTE:
        wait = max(1, math.ceil((window_end - now_ms()) / 1000))
        return {"status": 429, "message": "Too many submissions", "retryAfter": wait}
    form_id = ctx.db.normalize_id("formEndpoints", args["formId"])
    form = None if form_id is None else await ctx.db.get(form_id)
    if form is None:
        return {"status": 404, "message": "Form not found", "reason": "form_not_found"}
    form = dict(form)
    if not form["isActive"]:
        return {"status": 403, "message": "This form is not active", "reason": "form_inactive"}
    raw = args["data"]
    if len(raw) > MAX_KEYS or any(len(name) > MAX_KEY for name in raw):
        return {"status": 400, "message": f"At most {MAX_KEYS} fields of ≤ {MAX_KEY} characters"}
    data = {name: value[:MAX_VALUE] for name, value in raw.items()}
    answer = {"status": 200, "message": "Form submitted successfully"}
    if form.get("redirectUrl"):
        answer["redirectUrl"] = form["redirectUrl"]
    if data.get(form["honeypotFieldName"], "").strip():
        await _record(ctx, form, args, data, "spam")
        return answer
    errors, email = _errors(form, data)
    if errors or email is None:
        message = "; ".join(errors)
        await _record(ctx, form, args, data, "invalid", error=message)
        return {"status": 400, "message": message, "reason": "validation_error"}
    organization_id = form["organizationId"]
    contact = await live_by_email(ctx, organization_id, email)
    created = contact is None
    if contact is None:
        names = {
            target: data[source].strip()[:MAX_NAME]
            for target, sources in (("firstName", ("firstName", "first_name")),
                                    ("lastName", ("lastName", "last_name")))
            for source in sources
            if data.get(source, "").strip()
        }  # fmt: skip
        contact = await create_contact(
            ctx, organization_id, {"email": email, **names}, "form", None
        )
    status = "success" if created else "duplicate"
    mailing_list = (
        None
        if form.get("listId") is None
        else await live_document(ctx, "mailingLists", organization_id, form["listId"])
    )
    if mailing_list is not None:
        result = await subscribe(
            ctx,
            mailing_list=mailing_list,
            contact=contact,
            source="form",
            force_doi=form["doubleOptIn"],
        )
        status = {"already_member": "duplicate", "pending_doi": "pending_confirmation"}.get(
            result.outcome, "success"
        )
    await _record(ctx, form, args, data, status, str(contact["_id"]))
    if status == "pending_confirmation":
        answer["message"] = "Please check your email to confirm your subscription"
        answer["confirmationRequired"] = True
    return answer


@internal_mutation(args={})
async def scrub_submissions(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Drop IP and user agent of submissions older than 90 days (a batch; continues)."""
    cutoff = now_ms() - RETENTION_MS
    old = await (
        ctx.db.query("formSubmissions")
        .with_index("by_submitted", lambda q: q.lt("submittedAt", cutoff))
        .filter(
            lambda q: q.or_(
                q.not_(q.is_type(q.field("ipAddress"), "undefined")),
                q.not_(q.is_type(q.field("userAgent"), "undefined")),
            )
        )
        .take(BATCH)
    )
    for row in old:
        await ctx.db.patch(row["_id"], {"ipAddress": UNDEFINED, "userAgent": UNDEFINED})
    if len(old) == BATCH:
        await ctx.scheduler.run_after(0, internal.form_endpoints.scrub_submissions, {})
    return len(old)
