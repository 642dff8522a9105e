"""Every table of Owlat with its indexes (filled in by the app issues)."""

from __future__ import annotations

from owlat.runtime import define_schema

schema = define_schema({})
