"""Owlat's recurring jobs."""

from __future__ import annotations

from owlat.runtime import cron_jobs, internal

crons = cron_jobs()
# Expired sessions and emailed tokens, stale rate-limit rows.
crons.hourly("purge expired auth records", {"minuteUTC": 7}, internal.auth.purge_expired, {})
# Contacts soft-deleted more than 30 days ago, with their timelines.
crons.hourly("purge deleted contacts", {"minuteUTC": 23}, internal.contacts.purge_deleted, {})
# CSV imports whose worker stopped (a restart interrupts a scheduled action) resume: all
# of them as soon as a server starts, and any that stalls for a minute on a running one.
crons.at_start("resume imports at start", internal.contact_imports.resume_stalled, {"idleMs": 0})
crons.interval(
    "resume stalled imports", {"minutes": 1}, internal.contact_imports.resume_stalled, {}
)
# Maintained segment counts: recorded changes folded into their base; stalled backfills.
crons.interval("fold segment counts", {"minutes": 1}, internal.segment_counts.fold, {})
crons.interval(
    "resume segment count backfills",
    {"minutes": 1},
    internal.segment_counts.resume_backfills,
    {},
)
# Saved-block changes whose propagation into templates stopped (a step failed) restart.
crons.interval(
    "resume saved block propagations",
    {"minutes": 1},
    internal.email_blocks.resume_stalled_propagations,
    {},
)
# Sends left `queued` or `sending` by a crash for longer than the lease (OWLAT_SEND_LEASE_
# SECONDS): sent again only where the provider dedupes (lib/sending/sends.py), otherwise
# failed as DELIVERY_UNCERTAIN. Also at start, right after a restart failed the delivery
# actions it interrupted; often, since a lease may be short and the check is one index read.
# Those the crashed process's attempt journal shows never handed to a provider are sent
# again (lib/sending/journal.py); the journals nothing needs any more are deleted.
crons.at_start("recover stalled sends at start", internal.transactional_sends.recover, {})
crons.interval("recover stalled sends", {"seconds": 15}, internal.transactional_sends.recover, {})
crons.interval("sweep attempt journals", {"minutes": 1}, internal.delivery_journals.sweep, {})
# Idempotency keys of the REST API older than 24 hours.
crons.hourly(
    "purge expired idempotency keys",
    {"minuteUTC": 41},
    internal.rest_api.transactional.purge_idempotency_keys,
    {},
)
# Sending and tracking domains whose next check has come (lib/domains/states.py back-off).
crons.interval("recheck domains", {"minutes": 5}, internal.dns_verification.recheck_due, {})
# Raw bodies of provider webhooks older than 90 days (reference §2.7, §13).
crons.daily(
    "purge provider webhook payloads",
    {"hourUTC": 3, "minuteUTC": 17},
    internal.provider_webhooks.purge_payloads,
    {},
)
# Outgoing webhooks: attempts whose scheduled delivery was lost (a restart) are scheduled
# again; finished delivery logs older than 30 days are deleted (reference §13).
crons.interval("redrive webhook deliveries", {"minutes": 1}, internal.webhooks.redrive, {})
crons.daily(
    "purge webhook delivery logs",
    {"hourUTC": 3, "minuteUTC": 37},
    internal.webhooks.purge_logs,
    {},
)
# Automations: running runs whose next step is more than a minute overdue (its scheduled
# job was lost, e.g. to a restart) are scheduled again; the run's compare-and-set keeps
# each step to one execution (reference §13 "process pending delays").
crons.interval("redrive automation steps", {"minutes": 1}, internal.automations.redrive, {})
# Forms: IP address and user agent of submissions older than 90 days (reference §13).
crons.daily(
    "scrub form submissions",
    {"hourUTC": 3, "minuteUTC": 47},
    internal.form_endpoints.scrub_submissions,
    {},
)
# Campaigns (lib/campaigns/): scheduled ones whose time has come start; sends left
# `sending` by a crash past the lease go back to `queued` when the crashed process's
# attempt journal shows they were never handed to the provider (lib/sending/journal.py),
# else are failed as DELIVERY_UNCERTAIN (or re-claimed when the provider dedupes);
# sending campaigns without workers (a restart loses running actions: at once at start,
# else after a quiet 30 s) get new ones; finished ones complete.
crons.interval("start due campaigns", {"minutes": 1}, internal.campaign_sends.start_due, {})
crons.at_start("resume campaigns at start", internal.campaign_sends.recover, {"idleMs": 0})
crons.interval("recover campaign sends", {"seconds": 15}, internal.campaign_sends.recover, {})
# Organization deletions whose next step was lost (a step that failed) go on.
crons.interval(
    "resume organization deletions",
    {"minutes": 1},
    internal.organization_deletion.resume_stalled,
    {},
)
