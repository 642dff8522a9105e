"""Imports every runtime module that defines a system table, so that all of them are
registered (schema.register_system_table) before any catalog is synchronized."""

from __future__ import annotations

from owlat.runtime import (
    _scheduler_claims,
    _scheduler_worker,
    scheduler,
    session_requests,
    storage,
)

LOADED = (
    scheduler.TABLE,
    _scheduler_worker.CRON_TABLE,
    _scheduler_claims.TABLE,
    session_requests.TABLE,
    storage.TABLE,
)
