"""A/B tests of campaigns (reference §11.3).

A draft gets a test (`clean_config`): variant B differs by subject (`variantBSubject`) or
by template (`variantBTemplateId`, a published template of the organization); each
variant goes to `splitPercentage` (10–50) % of the audience; the winner is the variant
with the better `open_rate` or `click_rate` after `testDuration` hours, or the one an
admin declares (`manual`; an admin may also declare early under the automatic criteria).

Buckets: `bucket(campaignId, contactId)` = FNV-1a 32-bit of the UTF-8 bytes of
"campaignId:contactId" divided by 2³², in [0, 1); `testFraction` = 2 × split / 100. A
contact with a bucket below `testFraction` is in the test cohort: variant A below half of
it, B above; every other contact is held back (counted in the job's `heldBack`).

Phases: starting sends moves the test `pending → testing`, the walk runs in `ab_test`
mode (test cohort only) and, for automatic criteria, `auto_declare` is scheduled after
`testDuration` hours. `declare` (automatic or manual) records the winner
(`winner_selected`), resets the walk to `ab_winner` mode from the start: every contact
of the audience without a send gets one of the winner's variant (the test cohort has
one already: nobody gets two) — recipient-local timing does not apply (upstream). The
campaign is complete only after that remainder walk (`awaiting_winner`).

Winner: B iff B's rate (sends opened, or clicked, ÷ sends sent) is strictly greater, else
A (ties, no data). Upstream divides by `delivered`; here an open or a click is itself
delivery evidence (§10.1) and SMTP relays report no deliveries, so that rate would be 100 %
for any variant opened once: Owlat divides by the messages its providers accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from owlat.app.lib.errors import invalid
from owlat.app.lib.templates import find_template
from owlat.runtime import QueryCtx

MIN_SPLIT, MAX_SPLIT = 10, 50
MAX_DURATION_HOURS = 30 * 24
VARIANTS = ("A", "B")
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193
_METRIC = {"open_rate": "opened", "click_rate": "clicked"}


def fnv1a(text: str) -> int:
    """FNV-1a, 32 bits, of `text`'s UTF-8 bytes."""
    value = _FNV_OFFSET
    for byte in text.encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def bucket(campaign_id: str, contact_id: str) -> float:
    """The contact's place in [0, 1) for this campaign (module docstring)."""
    return fnv1a(f"{campaign_id}:{contact_id}") / 2**32


def test_fraction(config: Mapping[str, Any]) -> float:
    return 2 * float(config["splitPercentage"]) / 100


def variant_of(job: Mapping[str, Any], campaign: Mapping[str, Any], contact_id: str) -> str | None:
    """The variant the walk gives the contact: "A"/"B" (test cohort, or the winner's in
    the remainder walk), None for a plain campaign, "" when held back from the test."""
    mode = job.get("variantMode") or "plain"
    if mode == "plain":
        return None
    if mode == "ab_winner":
        return str(campaign["abWinner"])
    fraction = float(job["testFraction"])
    place = bucket(campaign["_id"], contact_id)
    if place >= fraction:
        return ""
    return "A" if place < fraction / 2 else "B"


def awaiting_winner(campaign: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    """Whether the campaign cannot complete yet: an A/B test before its remainder walk."""
    return bool(campaign.get("isABTest")) and job.get("variantMode") != "ab_winner"


async def clean_config(
    ctx: QueryCtx, organization_id: str, args: Mapping[str, Any]
) -> dict[str, Any]:
    """The test's settings from `enableAbTest`'s arguments, checked (precise errors)."""
    split = args["splitPercentage"]
    if not (MIN_SPLIT <= split <= MAX_SPLIT) or split != int(split):
        raise invalid(
            "INVALID_SPLIT",
            f"splitPercentage must be a whole number from {MIN_SPLIT} to {MAX_SPLIT}",
        )
    config: dict[str, Any] = {
        "testType": args["testType"],
        "splitPercentage": int(split),
        "winnerCriteria": args["winnerCriteria"],
    }
    if args["testType"] == "subject":
        subject = " ".join((args.get("variantBSubject") or "").split())
        if not subject:
            raise invalid("INVALID_VARIANT", "A subject test needs variantBSubject")
        if len(subject) > 1000:
            raise invalid("INVALID_VARIANT", "variantBSubject must be at most 1000 characters")
        config["variantBSubject"] = subject
    else:
        template_id = args.get("variantBTemplateId")
        template = (
            None if not template_id else await find_template(ctx, organization_id, template_id)
        )
        if template is None:
            raise invalid("INVALID_VARIANT", "A content test needs variantBTemplateId: a template")
        config["variantBTemplateId"] = template["_id"]
    duration = args.get("testDuration")
    if args["winnerCriteria"] == "manual":
        if duration is not None:
            raise invalid("INVALID_DURATION", "A manual test has no testDuration")
    elif duration is None or not (0 < duration <= MAX_DURATION_HOURS):
        raise invalid(
            "INVALID_DURATION",
            f"An automatic winner needs testDuration: more than 0 and at most "
            f"{MAX_DURATION_HOURS} hours",
        )
    else:
        config["testDuration"] = float(duration)
    return config


async def check_variant(ctx: QueryCtx, campaign: Mapping[str, Any]) -> None:
    """Preflight of a content test: variant B's template exists and is published."""
    template_id = campaign["abTestConfig"].get("variantBTemplateId")
    if template_id is None:
        return
    template = await find_template(ctx, campaign["organizationId"], template_id)
    if template is None:
        raise invalid("NO_TEMPLATE", "Variant B's template was deleted: choose another")
    if template.get("status") != "published":
        raise invalid(
            "TEMPLATE_NOT_PUBLISHED",
            f'Publish the template "{template["name"]}" (variant B) before sending',
        )


def bumped(
    variants: Mapping[str, Any] | None, variant: str, counter: str, delta: int
) -> dict[str, dict[str, float]]:
    """`campaignStats.variants` with the variant's `counter` moved by `delta`."""
    moved = {name: dict(counts) for name, counts in (variants or {}).items()}
    counts = moved.setdefault(variant, {})
    counts[counter] = counts.get(counter, 0) + delta
    return moved


def _rate(counts: Mapping[str, float], metric: str) -> float | None:
    sent = counts.get("sent") or 0
    return None if not sent else counts.get(metric, 0) / sent


def winner(config: Mapping[str, Any], variants: Mapping[str, Any] | None) -> str:
    """The automatic winner (module docstring)."""
    metric = _METRIC[config["winnerCriteria"]]
    rates = [_rate((variants or {}).get(name) or {}, metric) for name in VARIANTS]
    if rates[1] is not None and (rates[0] is None or rates[1] > rates[0]):
        return "B"
    return "A"


def summary(
    campaign: Mapping[str, Any], job: Mapping[str, Any] | None, stats: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The test's part of `campaigns:progress`: its settings, state, winner, `heldBack`
    and per variant `sent`, `delivered`, `opened`, `humanOpened`, `clicked`, `bounced`,
    `complained`, `openRate`, `clickRate` (null without data)."""
    if not campaign.get("isABTest"):
        return None
    recorded = (stats or {}).get("variants") or {}
    variants = {}
    for name in VARIANTS:
        counts = recorded.get(name) or {}
        row: dict[str, Any] = {
            key: int(counts.get(key, 0))
            for key in ("sent", "delivered", "opened", "humanOpened", "clicked", "bounced",
                        "complained")
        }  # fmt: skip
        row["openRate"] = _rate(counts, "opened")
        row["clickRate"] = _rate(counts, "clicked")
        variants[name] = row
    return {
        "config": dict(campaign["abTestConfig"]),
        "status": campaign.get("abTestStatus") or "pending",
        "winner": campaign.get("abWinner"),
        "winnerSelectedAt": campaign.get("abWinnerSelectedAt"),
        "heldBack": int((job or {}).get("heldBack") or 0),
        "variants": variants,
    }
