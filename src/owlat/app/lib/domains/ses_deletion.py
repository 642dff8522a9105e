"""Deleting an SES domain's identity at SES, when the domain or its organization goes.

The mutation that deletes the domain schedules `ses_actions.delete_identity` with what the
action needs to reach SES (the region and the organization's sealed SES credentials), so
the action works after the `emailProviders` row is gone too (an organization's deletion
deletes both). An SES error is logged and the call tried again after `RETRY_DELAYS_S`;
after the last, the identity is left for the SES console (logged as an error). It never
holds up the deletion that scheduled it.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from owlat.app.lib.sending.routes import provider_row
from owlat.runtime import MutationCtx, internal

logger = logging.getLogger("owlat.domains")
# seconds before each retry of a failed deletion (then it is given up)
RETRY_DELAYS_S: Final[tuple[float, ...]] = (60, 600, 3600, 6 * 3600)


async def schedule_identity_deletion(ctx: MutationCtx, organization_id: str, domain: str) -> None:
    """Schedule the deletion of `domain`'s identity with the organization's SES account."""
    config = await provider_row(ctx, organization_id, "ses")
    if config is None:
        logger.warning("the SES identity of %s is not deleted: SES is not configured", domain)
        return
    await ctx.scheduler.run_after(
        0, internal.ses_actions.delete_identity, _identity_args(organization_id, domain, config)
    )


def _identity_args(organization_id: str, domain: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "organizationId": organization_id,
        "domain": domain,
        "region": config["settings"]["region"],
        "credentials": config["credentials"],
        "attempt": 0,
    }
