"""No import cycle runs when owlat's modules are imported (scripts/import_cycles.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_cycles.py"


def test_no_module_imports_itself_back_at_import_time() -> None:
    spec = importlib.util.spec_from_file_location("import_cycles", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    edges = script.graph(every=False)
    assert "owlat.runtime.values.validators" in edges["owlat.runtime.values"]
    # importing a package's module runs the package's __init__ first
    assert "owlat.runtime.database" in edges["owlat.runtime.application"]
    assert script.cycles(edges) == []
    # the detector itself: a module that imports its importer back is a cycle
    assert script.cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
