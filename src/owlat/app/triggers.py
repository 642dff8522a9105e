"""Owlat's triggers: derived data kept in the same transaction as every write that
changes it (runtime/triggers.py)."""

from __future__ import annotations

from owlat.app import segment_counts
from owlat.app.lib import automations, call_cache, transactional_profiles
from owlat.app.lib.sending.send_tables import SEND_TABLES
from owlat.app.lib.webhooks import events as webhook_events
from owlat.runtime import Triggers

triggers = Triggers()
# Maintained segment counts follow every contact write, whichever function made it.
triggers.on("contacts")(segment_counts.on_contact_change)
# Outgoing webhooks: contact.created/updated/deleted from any contact write, email.sent
# when a send of any send table becomes `sent` (lib/webhooks/events.py).
triggers.on("contacts")(webhook_events.on_contact_change)
for send_table in SEND_TABLES:
    triggers.on(send_table)(webhook_events.on_send_change)
# Automations: contact created / updated, event received, list subscribed start runs
# (lib/automations.py).
triggers.on("contacts")(automations.on_contact_change)
triggers.on("events")(automations.on_event_change)
triggers.on("mailingListMembers")(automations.on_membership_change)
# Lookups of automations and webhooks kept for the rest of a call (lib/call_cache.py) are
# read again after a write to their table.
triggers.on("automations")(call_cache.forget)
triggers.on("webhooks")(call_cache.forget)
# What the API's intake reads of a transactional email follows every write of it
# (lib/transactional_profiles.py).
triggers.on("transactionalEmails")(transactional_profiles.on_email_change)
