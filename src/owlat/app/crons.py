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
# Sends left `queued` or `sending` by a crash: sent again only where the provider dedupes
# (lib/sending/sends.py), otherwise failed as DELIVERY_UNCERTAIN.
crons.interval(
    "recover stalled sends", {"minutes": 1}, internal.transactional_sends.recover_stalled, {}
)
# Sending and tracking domains whose next check has come (lib/domains/states.py back-off).
crons.interval("recheck domains", {"minutes": 5}, internal.dns_verification.recheck_due, {})
