"""`owlat run`: a function against the local database, result printed as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def owlat(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OWLAT_APP": "tests.fixtures.app"}
    return subprocess.run(
        [sys.executable, "-m", "owlat.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_run_mutation_then_query_prints_json(tmp_path: Path) -> None:
    sent = owlat(tmp_path, "run", "messages:send", '{"channel": "cli", "body": "hi"}')
    assert sent.returncode == 0, sent.stderr
    message_id = json.loads(sent.stdout)
    assert isinstance(message_id, str)
    listed = owlat(tmp_path, "run", "messages:list", '{"channel": "cli"}')
    assert listed.returncode == 0, listed.stderr
    (message,) = json.loads(listed.stdout)
    assert message["_id"] == message_id and message["body"] == "hi"


def test_run_may_call_internal_functions(tmp_path: Path) -> None:
    result = owlat(tmp_path, "run", "messages:countAll")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 0.0


def test_run_reports_errors_precisely(tmp_path: Path) -> None:
    bad_json = owlat(tmp_path, "run", "messages:list", "{nope")
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
    not_object = owlat(tmp_path, "run", "messages:list", "[1]")
    assert not_object.returncode == 2 and "must be a JSON object" in not_object.stderr
    missing = owlat(tmp_path, "run", "messages:nope")
    assert missing.returncode == 1 and "Could not find function for 'messages:nope'" in (
        missing.stderr
    )
    invalid = owlat(tmp_path, "run", "messages:send", '{"channel": "c"}')
    assert invalid.returncode == 1 and "missing the required field `body`" in invalid.stderr
    convex_error = owlat(tmp_path, "run", "messages:send", '{"channel": "c", "body": ""}')
    assert convex_error.returncode == 1
    assert '"code":"EMPTY_BODY"' in convex_error.stderr
