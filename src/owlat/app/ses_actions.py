"""`sesActions:*`: a sending domain's identity at Amazon SES (reference §12.2), with the
organization's SES credentials (`emailProviders`).

`registerIdentity` (internal action, scheduled by `domains:create` and by `register`)
registers the identity (`lib/domains/ses_identity.py`), then `registered` stores SES's
tokens, issues the records and moves the domain to pending, or, when SES refuses, to failed
with `lastRegistrationError`. `register` (`organization:manage`) starts registration again
(after a failure, or to refresh the tokens). `deleteIdentity` removes the identity when the
domain or its organization is removed (`lib/domains/ses_deletion.py`: an SES error is logged
and the call retried a few times; after the last, the identity is left to the SES console).
"""

from __future__ import annotations

import logging
from typing import Any

from owlat.app.lib.domains import ses_deletion
from owlat.app.lib.domains.checking import ses_identities, ses_identities_of
from owlat.app.lib.domains.issuing import domain_view, records_for
from owlat.app.lib.domains.records import records_document
from owlat.app.lib.domains.ses_identity import SesError
from owlat.app.lib.domains.states import DomainState, DomainStatus, move
from owlat.app.lib.errors import not_found
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.session_organization import get_mutation_context, now_ms
from owlat.runtime import (
    UNDEFINED,
    ActionCtx,
    MutationCtx,
    QueryCtx,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    v,
)

logger = logging.getLogger("owlat.domains")


@mutation(args={"domainId": v.id("domains")})
async def register(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Register an SES domain's identity again; the domain, now `registering`."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "organization:manage")
    row = await ctx.db.get(args["domainId"])
    if row is None or row["organizationId"] != context.team_id or row["providerKind"] != "ses":
        raise not_found("SES domain")
    now = int(now_ms())
    state = move(DomainState.from_fields(row), DomainStatus.REGISTERING, now)
    fields = {k: UNDEFINED if val is None else val for k, val in state.to_fields().items()}
    await ctx.db.patch(row["_id"], {**fields, "updatedAt": now})
    await ctx.scheduler.run_after(
        0, internal.ses_actions.register_identity, {"domainId": row["_id"]}
    )
    updated = await ctx.db.get(row["_id"])
    assert updated is not None  # patched in this transaction
    return domain_view(dict(updated), now)


@internal_query(args={"domainId": v.id("domains")})
async def registering(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    row = await ctx.db.get(args["domainId"])
    return None if row is None or row["status"] != "registering" else dict(row)


@internal_action(args={"domainId": v.id("domains")})
async def register_identity(ctx: ActionCtx, args: dict[str, Any]) -> None:
    row = await ctx.run_query(internal.ses_actions.registering, args)
    if row is None:
        return
    outcome: dict[str, Any] = {"domainId": row["_id"]}
    identities = await ses_identities(ctx, row["organizationId"])
    if identities is None:
        outcome["error"] = "Amazon SES is not configured for this organization; configure it again"
    else:
        try:
            identity = await identities.register(row["domain"], row["returnPathHost"])
            outcome.update(
                verificationToken=identity.verification_token,
                dkimTokens=list(identity.dkim_tokens),
            )
        except SesError as error:
            outcome["error"] = str(error)
        finally:
            identities.close()
    await ctx.run_mutation(internal.ses_actions.registered, outcome)


@internal_mutation(
    args={
        "domainId": v.id("domains"),
        "verificationToken": v.optional(v.string()),
        "dkimTokens": v.optional(v.array(v.string())),
        "error": v.optional(v.string()),
    }
)
async def registered(ctx: MutationCtx, args: dict[str, Any]) -> None:
    row = await ctx.db.get(args["domainId"])
    if row is None or row["status"] != "registering":
        return
    now = int(now_ms())
    state = DomainState.from_fields(row)
    changes: dict[str, Any] = {"updatedAt": now}
    if args.get("error") is not None:
        state = move(state, DomainStatus.FAILED, now)
        changes["lastRegistrationError"] = args["error"]
    else:
        tokens = {
            "sesVerificationToken": args["verificationToken"],
            "sesDkimTokens": args["dkimTokens"],
        }
        records = records_for({**row, **tokens})
        changes.update(
            tokens,
            dnsRecords=records_document(records),
            recordsVersion=row["recordsVersion"] + 1,
            lastRegistrationError=UNDEFINED,
        )
        state = move(state, DomainStatus.PENDING, now)
    changes.update({k: UNDEFINED if val is None else val for k, val in state.to_fields().items()})
    await ctx.db.patch(row["_id"], changes)


@internal_action(
    args={
        "organizationId": v.id("organizations"),
        "domain": v.string(),
        # scheduled by `lib/domains/ses_deletion.py`: the SES account, the tries so far
        "region": v.optional(v.string()),
        "credentials": v.optional(v.string()),
        "attempt": v.optional(v.number()),
    }
)
async def delete_identity(ctx: ActionCtx, args: dict[str, Any]) -> None:
    """Delete the identity; after an SES error, again later (`ses_deletion.RETRY_DELAYS_S`)."""
    organization_id, domain = args["organizationId"], args["domain"]
    if args.get("credentials") is None:  # scheduled before the account came with the call
        identities = await ses_identities(ctx, organization_id)
    else:
        identities = ses_identities_of(organization_id, args["region"], args["credentials"])
    if identities is None:
        logger.error("the SES identity of %s was not deleted: no SES credentials", domain)
        return
    try:
        await identities.delete(domain)
    except SesError:
        attempt = int(args.get("attempt") or 0)
        if args.get("credentials") is None or attempt >= len(ses_deletion.RETRY_DELAYS_S):
            logger.error("the SES identity of %s was not deleted", domain, exc_info=True)
            return
        logger.warning("the SES identity of %s was not deleted; trying again", domain,
                       exc_info=True)  # fmt: skip
        await ctx.scheduler.run_after(
            ses_deletion.RETRY_DELAYS_S[attempt],
            internal.ses_actions.delete_identity,
            {**args, "attempt": attempt + 1},
        )
    finally:
        identities.close()
