from __future__ import annotations

from owlat.runtime import define_schema, define_table, v

schema = define_schema({"notes": define_table({"text": v.string()})})
