"""Owlat's recurring jobs."""

from __future__ import annotations

from owlat.runtime import cron_jobs, internal

crons = cron_jobs()
# Expired sessions and emailed tokens, stale rate-limit rows.
crons.hourly("purge expired auth records", {"minuteUTC": 7}, internal.auth.purge_expired, {})
