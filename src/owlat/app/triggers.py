"""Owlat's triggers: derived data kept in the same transaction as every write that
changes it (runtime/triggers.py)."""

from __future__ import annotations

from owlat.app import segment_counts
from owlat.runtime import Triggers

triggers = Triggers()
# Maintained segment counts follow every contact write, whichever function made it.
triggers.on("contacts")(segment_counts.on_contact_change)
