"""`POST /api/v1/transactional` (reference §3.9): send a transactional email to one address.

Request: `{transactionalId | slug, email, dataVariables?, language?, attachments?,
addToAudience?}` (attachments: `[{filename, content (base64) | url (https), contentType?}]`,
at most 10 and 10 MB together with the template's). Its shape is checked first, with
upstream's messages (`parse`); then one mutation (`send`) checks, in upstream's order, each
refusal carrying `data.reason`:

    abuse_blocked          403  the organization's abuse status is suspended or banned
    no_delivery_provider   422  the transactional route names no enabled provider
    recipient_blocked      422  on the suppression list (`unengaged` does not block)
    template_not_found     404  no such transactional email (by id or slug)
    template_not_published 422
    template_no_content    422
    domain_unverified      422  the From address's domain is not a verified sending domain
    invalid_variables      400  a variable of the wrong type for the email's schema

and then upserts the contact (source `transactional`; `addToAudience: false` creates none),
resolves the language, personalizes the subject and records the send with
`sends.enqueue_send`, naming the email's rendering in that language (stored once for all
its sends, `send_contents.py`; the bodies are personalized at delivery): queued durably,
with its delivery scheduled, before the answer
`202 {"data": {"status": "queued", "email", "transactionalEmailId" (the send's id), "slug",
"contactId"?, "contactCreated", "language"}}`. Base64 attachments are stored as files of
the organization before the mutation, deleted again when it refuses, and deleted once the
send is sent or failed; URL attachments are fetched when the send is delivered
(`lib/sending/attachments.py`).

`Idempotency-Key` (header, 1–255 printable ASCII characters): the first accepted request
with a key records its answer for 24 hours (`apiIdempotencyKeys`); a request with the same
key and the same body gets that answer again (`Idempotent-Replayed: true`) and sends
nothing; with another body, 409 `conflict` (reason `idempotency_key_reused`). Refused
requests record nothing, so a corrected request may reuse its key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.api_keys import check_key
from owlat.app.lib.activities import insert_created
from owlat.app.lib.api_key_auth import ApiKeyCaller
from owlat.app.lib.contacts import contact_record, live_by_email
from owlat.app.lib.email_providers.routing import MessageType
from owlat.app.lib.errors import AppError
from owlat.app.lib.sending.attachments import (
    MAX_ATTACHMENTS,
    MAX_TOTAL_BYTES,
    content_type_problem,
    filename_problem,
    url_problem,
)
from owlat.app.lib.sending.composition import SendKind, feedback_id
from owlat.app.lib.sending.intake import abuse_block, no_provider
from owlat.app.lib.sending.send_contents import personalized_subject
from owlat.app.lib.sending.sends import SendRequest, checked_sender, enqueue_send
from owlat.app.lib.sending.suppression import suppressed
from owlat.app.lib.session_organization import now_ms
from owlat.app.lib.transactional_emails import (
    footer_links_for,
    resolve_language,
    variable_problem,
)
from owlat.app.lib.transactional_profiles import content_of, profile_for
from owlat.app.rest_api.wire import (
    ApiError,
    KeyCheck,
    checked_email,
    data,
    json_object,
    json_value,
    keyed_endpoint,
)
from owlat.app.schema import ATTACHMENT
from owlat.runtime import (
    ActionCtx,
    MutationCtx,
    QueryCtx,
    internal,
    internal_mutation,
    internal_query,
    v,
)

SCOPE = "transactional:send"
SOURCE = "transactional"  # a contact the intake creates
MAX_BODY = 15_000_000  # 10 MB of attachments in base64, and the rest
IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
PURGE_BATCH = 500
LANGUAGE = re.compile(r"^[a-z]{2}(-[a-z]{2,3})?$", re.IGNORECASE)
_KEY = re.compile(r"^[ -~]{1,255}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
TOO_LARGE = "Total attachment size exceeds 10MB limit"


@dataclasses.dataclass(frozen=True)
class _Parsed:
    """A request whose shape is checked (`files`: the base64 attachments, decoded)."""

    email: str  # normalized
    raw_email: str
    transactional_id: str | None
    slug: str | None
    variables: dict[str, Any]
    language: str | None
    add_to_audience: bool
    attachments: list[dict[str, Any]]  # in order; a file's `storageId` is set once stored
    files: dict[int, tuple[bytes, str | None]]  # attachment index -> content, type


def _string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value


def _attachments(raw: Any) -> tuple[list[dict[str, Any]], dict[int, tuple[bytes, str | None]]]:
    if raw is None:
        return [], {}
    if not isinstance(raw, list):
        raise ApiError(400, "attachments must be an array")
    if len(raw) > MAX_ATTACHMENTS:
        raise ApiError(400, f"Maximum {MAX_ATTACHMENTS} attachments allowed")
    described: list[dict[str, Any]] = []
    files: dict[int, tuple[bytes, str | None]] = {}
    total = 0
    for index, item in enumerate(raw):
        at = f"attachments[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{at} must be an object")
        filename = item.get("filename")
        if not isinstance(filename, str) or not filename:
            raise ApiError(400, f"{at}.filename is required and must be a string")
        problem = filename_problem(filename)
        if problem is not None:
            raise ApiError(400, f"{at}.filename {problem}")
        content_type = item.get("contentType")
        if content_type is not None and (
            not isinstance(content_type, str) or content_type_problem(content_type)
        ):
            raise ApiError(400, f"{at}.contentType must be a MIME type such as application/pdf")
        content, url = item.get("content"), item.get("url")
        if (content is None) == (url is None):
            raise ApiError(400, f'{at} must have exactly one of "content" (base64) or "url"')
        entry: dict[str, Any] = {"filename": filename}
        if content_type:
            entry["contentType"] = content_type
        if url is not None:
            if not isinstance(url, str) or url_problem(url) is not None:
                raise ApiError(400, f"{at}.url must be an HTTPS URL")
            entry["url"] = url
        else:
            if not isinstance(content, str):
                raise ApiError(400, f"{at}.content must be a base64-encoded string")
            compact = "".join(content.split())
            if len(compact) % 4 or not _BASE64.match(compact):
                raise ApiError(400, f"{at}.content is not valid base64")
            if len(compact) // 4 * 3 > MAX_TOTAL_BYTES + 2:
                raise ApiError(400, TOO_LARGE)
            try:
                decoded = base64.b64decode(compact, validate=True)
            except binascii.Error:
                raise ApiError(400, f"{at}.content is not valid base64") from None
            total += len(decoded)
            if total > MAX_TOTAL_BYTES:
                raise ApiError(400, TOO_LARGE)
            entry["size"] = len(decoded)
            files[index] = (decoded, content_type)
        described.append(entry)
    return described, files


def parse(body: dict[str, Any]) -> _Parsed:
    """The request's shape, checked in upstream's order with its messages."""
    raw_email = body.get("email")
    email = checked_email(body, "email", "email")
    transactional_id, slug = _string(body, "transactionalId"), _string(body, "slug")
    if not transactional_id and not slug:
        raise ApiError(400, "Either transactionalId or slug is required")
    if transactional_id and slug:
        raise ApiError(400, "Give either transactionalId or slug, not both")
    variables = body.get("dataVariables")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise ApiError(400, "dataVariables must be an object")
    variables = json_value(variables, "dataVariables")
    language = _string(body, "language")
    if language is not None and not LANGUAGE.match(language):
        raise ApiError(400, "language must be a language code such as en, de or pt-BR")
    attachments, files = _attachments(body.get("attachments"))
    add_to_audience = body.get("addToAudience", True)
    if not isinstance(add_to_audience, bool):
        raise ApiError(400, "addToAudience must be a boolean")
    return _Parsed(
        email=email,
        raw_email=str(raw_email),
        transactional_id=transactional_id or None,
        slug=slug or None,
        variables=variables,
        language=language,
        add_to_audience=add_to_audience,
        attachments=attachments,
        files=files,
    )


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _KEY.match(key):
        raise ApiError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


def request_hash(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _answer(result: dict[str, Any]) -> Response:
    """The HTTP answer of what `replay` or `send` found."""
    refusal = result.get("refusal")
    if refusal is not None:
        raise ApiError(
            int(refusal["status"]),
            refusal["message"],
            reason=refusal["reason"],
            category=refusal.get("category"),
        )
    response = data(result["answer"], 202)
    if result.get("replayed"):
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def _discard(ctx: ActionCtx, storage_ids: list[str]) -> None:
    for storage_id in storage_ids:
        await ctx.storage.delete(storage_id)


@keyed_endpoint(SCOPE)
async def send_endpoint(ctx: ActionCtx, request: Request, check: KeyCheck) -> Response:
    key = _idempotency_key(request)
    body = await json_object(request, MAX_BODY)
    parsed = parse(body)
    fingerprint = request_hash(body) if key is not None else None
    if parsed.files:  # stored before the mutation, as the key's organization's
        return await _send_with_files(ctx, await check.caller(ctx), parsed, key, fingerprint)
    result = await ctx.run_mutation(  # the key checked in the transaction of the send
        internal.rest_api.transactional.send,
        {**_send_args(parsed, key, fingerprint), "keyHash": check.key_hash},
    )
    check.accepted(result["key"])
    return _answer(result)


def _send_args(parsed: _Parsed, key: str | None, fingerprint: str | None) -> dict[str, Any]:
    return {
        "email": parsed.email,
        "requestEmail": parsed.raw_email,
        "transactionalId": parsed.transactional_id,
        "slug": parsed.slug,
        "dataVariables": parsed.variables,
        "language": parsed.language,
        "addToAudience": parsed.add_to_audience,
        "attachments": parsed.attachments,
        "ownedStorageIds": [],
        "idempotencyKey": key,
        "requestHash": fingerprint,
    }


async def _send_with_files(
    ctx: ActionCtx, caller: ApiKeyCaller, parsed: _Parsed, key: str | None, fingerprint: str | None
) -> Response:
    """A request with base64 attachments: an earlier answer for its Idempotency-Key, else
    its files stored, then the send (the files deleted again when it sends nothing)."""
    organization_id = caller.organization_id
    if key is not None:
        earlier = await ctx.run_query(
            internal.rest_api.transactional.replay,
            {"organizationId": organization_id, "key": key, "requestHash": fingerprint},
        )
        if earlier is not None:
            return _answer(earlier)
    stored: list[str] = []
    try:
        attachments = [dict(item) for item in parsed.attachments]
        for index, (content, content_type) in parsed.files.items():
            storage_id = await ctx.storage.store(content, content_type, owner=organization_id)
            stored.append(storage_id)
            attachments[index]["storageId"] = storage_id
        result = await ctx.run_mutation(
            internal.rest_api.transactional.send,
            {
                **_send_args(parsed, key, fingerprint),
                "organizationId": organization_id,
                "attachments": attachments,
                "ownedStorageIds": stored,
            },
        )
    except BaseException:
        await _discard(ctx, stored)
        raise
    if "refusal" in result or result.get("replayed"):
        await _discard(ctx, stored)
    return _answer(result)


# -- the mutation ----------------------------------------------------------------------------


def _refusal(status: int, reason: str, message: str, category: str | None = None) -> dict[str, Any]:
    refusal = {"status": status, "reason": reason, "message": message}
    if category is not None:
        refusal["category"] = category
    return {"refusal": refusal}


async def _replay(
    ctx: QueryCtx | MutationCtx, organization_id: str, key: str, fingerprint: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(what to answer, the live row of the key): the recorded answer for the same body,
    a conflict for another body, or nothing when the key is new or expired."""
    row = await (
        ctx.db.query("apiIdempotencyKeys")
        .with_index("by_org_key", lambda q: q.eq("organizationId", organization_id).eq("key", key))
        .first()
    )
    if row is None:
        return None, None
    if row["expiresAt"] <= now_ms():
        return None, dict(row)
    if row["requestHash"] != fingerprint:
        message = f"Idempotency-Key {key!r} was already used with a different request body"
        return _refusal(409, "idempotency_key_reused", message, "conflict"), dict(row)
    return {"answer": row["response"], "replayed": True}, dict(row)


@internal_query(
    args={"organizationId": v.id("organizations"), "key": v.string(), "requestHash": v.string()}
)
async def replay(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """What an earlier request with this key answers now, or None."""
    found, _ = await _replay(ctx, args["organizationId"], args["key"], args["requestHash"])
    return found


async def _profile(ctx: MutationCtx, organization_id: str, args: dict[str, Any]) -> Any:
    """The profile of the transactional email the request names
    (`lib/transactional_profiles.py`), or a refusal."""
    email_id = args.get("transactionalId")
    profile = await profile_for(ctx, organization_id, email_id, args.get("slug"))
    if profile is None:
        missing = (
            f'Transactional email "{email_id}" not found'
            if email_id is not None
            else f'Transactional email with slug "{args["slug"]}" not found'
        )
        return _refusal(404, "template_not_found", missing)
    name = profile["slug"]
    if profile["status"] != "published":
        held = " (it awaits a content review)" if profile["status"] == "pending_review" else ""
        return _refusal(
            422, "template_not_published", f'Transactional email "{name}" is not published{held}'
        )
    if not profile["hasContent"]:
        return _refusal(422, "template_no_content", f'Transactional email "{name}" has no content')
    return profile


@internal_mutation(
    args={
        "organizationId": v.optional(v.id("organizations")),
        "keyHash": v.optional(v.string()),
        "email": v.string(),
        "requestEmail": v.string(),
        "transactionalId": v.optional(v.union(v.string(), v.null())),
        "slug": v.optional(v.union(v.string(), v.null())),
        "dataVariables": v.record(v.string(), v.any()),
        "language": v.optional(v.union(v.string(), v.null())),
        "addToAudience": v.boolean(),
        "attachments": v.array(ATTACHMENT),
        "ownedStorageIds": v.array(v.id("_storage")),
        "idempotencyKey": v.optional(v.union(v.string(), v.null())),
        "requestHash": v.optional(v.union(v.string(), v.null())),
    }
)
async def send(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Check, upsert the contact and enqueue the send (module docstring): `{answer}`,
    `{answer, replayed}` or `{refusal}` (nothing written but the key's token), for the
    organization given or, with `keyHash`, for the API key's, checked first in this
    transaction (`api_keys.check_key`): its result is under `key`, and a key refused or
    without the scope sends nothing."""
    if args.get("keyHash") is None:
        return await _send(ctx, args["organizationId"], args)
    checked = await check_key(ctx, args["keyHash"])
    if checked["status"] != "ok" or SCOPE not in checked["scopes"]:
        return {"key": checked}
    return {**await _send(ctx, checked["organizationId"], args), "key": checked}


async def _send(ctx: MutationCtx, organization_id: str, args: dict[str, Any]) -> dict[str, Any]:
    email = args["email"]
    key = args.get("idempotencyKey")
    if key is not None:
        found, row = await _replay(ctx, organization_id, key, args["requestHash"])
        if found is not None:
            return found
        if row is not None:  # expired
            await ctx.db.delete(row["_id"])
    refused = await abuse_block(ctx, organization_id)
    if refused is not None:
        return _refusal(403, "abuse_blocked", refused, "forbidden")
    refused = await no_provider(ctx, organization_id, MessageType.TRANSACTIONAL)
    if refused is not None:
        return _refusal(422, "no_delivery_provider", refused, "invalid_state")
    blocked = await suppressed(ctx, organization_id, SendKind.TRANSACTIONAL, email, None)
    if blocked is not None:
        return _refusal(422, "recipient_blocked", f"Cannot send to {email}: {blocked}")
    profile = await _profile(ctx, organization_id, args)
    if "refusal" in profile:
        return dict(profile)
    probe = SendRequest(organization_id, SendKind.TRANSACTIONAL, email, "-")
    try:
        from_address = await checked_sender(ctx, probe)
    except AppError as error:
        return _refusal(422, "domain_unverified", str(error.data))
    variables = args["dataVariables"]
    problem = variable_problem(profile.get("dataVariablesSchema") or {}, variables)
    if problem is not None:
        return _refusal(400, "invalid_variables", problem)
    own = profile.get("attachments") or []
    attachments = [*own, *args["attachments"]]
    if len(attachments) > MAX_ATTACHMENTS:
        too_many = f"Maximum {MAX_ATTACHMENTS} attachments allowed (the email has {len(own)})"
        return _refusal(400, "too_many_attachments", too_many)
    if sum(item.get("size") or 0 for item in attachments) > MAX_TOTAL_BYTES:
        return _refusal(400, "attachments_too_large", TOO_LARGE)
    contact = await live_by_email(ctx, organization_id, email)
    created = contact is None and args["addToAudience"]
    if created:  # `create_contact` without its second lookup and property read
        record = contact_record(organization_id, email, SOURCE, {}, {}, now_ms())
        (contact,) = await insert_created(ctx, [record], "created", {"source": SOURCE}, None)
    contact_id = None if contact is None else contact["_id"]
    language = resolve_language(
        profile, args.get("language"), None if contact is None else contact.get("language")
    )
    content = await content_of(ctx, profile, language)
    send_id = await enqueue_send(
        ctx,
        SendRequest(
            organization_id=organization_id,
            kind=SendKind.TRANSACTIONAL,
            to=email,
            subject=personalized_subject(content["subject"], variables),
            content_id=content["contentId"],
            footer_links=footer_links_for(profile, contact_id),
            contact_id=contact_id,
            feedback_id=feedback_id(
                profile["transactionalEmailId"], organization_id, SendKind.TRANSACTIONAL
            ),
            transactional_email_id=profile["transactionalEmailId"],
            language=language,
            data_variables=variables,
            attachments=attachments,
            owned_storage_ids=args["ownedStorageIds"],
        ),
        from_address=from_address,
    )
    answer: dict[str, Any] = {
        "status": "queued",
        "email": args["requestEmail"],
        "transactionalEmailId": send_id,
        "slug": args.get("slug") or "",
        "contactCreated": created,
        "language": language,
    }
    if contact_id is not None:
        answer["contactId"] = contact_id
    if key is not None:
        await ctx.db.insert(
            "apiIdempotencyKeys",
            {
                "organizationId": organization_id,
                "key": key,
                "requestHash": args["requestHash"],
                "response": answer,
                "sendId": send_id,
                "expiresAt": now_ms() + IDEMPOTENCY_TTL_MS,
            },
        )
    return {"answer": answer}


@internal_mutation(args={})
async def purge_idempotency_keys(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Delete idempotency keys past their 24 hours (a batch; the next one is scheduled
    while there are more); how many."""
    expired = await (
        ctx.db.query("apiIdempotencyKeys")
        .with_index("by_expires", lambda q: q.lte("expiresAt", now_ms()))
        .take(PURGE_BATCH)
    )
    for row in expired:
        await ctx.db.delete(row["_id"])
    if len(expired) == PURGE_BATCH:
        await ctx.scheduler.run_after(0, internal.rest_api.transactional.purge_idempotency_keys, {})
    return len(expired)
