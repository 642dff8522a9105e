"""Scheduled backups taken by a real `owlat serve` (OWLAT_BACKUP_SCHEDULE / _KEEP), and the
refusal of bad backup settings at start."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from tests.e2e.processes import owlat, started_with_site


async def test_owlat_serve_writes_backups_to_the_data_folder_and_keeps_n(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    env = {"OWLAT_BACKUP_SCHEDULE": "every 1s", "OWLAT_BACKUP_KEEP": "2"}
    process, _, _ = await started_with_site("serve", tmp_path, env=env)
    try:
        deadline = time.monotonic() + 30
        seen: set[str] = set()
        kept: list[str] = []
        while len(seen) < 3 or len(kept) != 2:  # three backups, then only the newest two
            assert time.monotonic() < deadline, f"{sorted(seen)} written, {kept} kept"
            await asyncio.sleep(0.1)
            kept = sorted(path.name for path in folder.glob("owlat-backup-*Z.zip"))
            assert len(kept) <= 3  # the new one, before the oldest is deleted
            seen.update(kept)
        assert kept == sorted(seen)[-2:]
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0

    # `owlat backup now`: one more, into the same folder, keeping the same N
    await asyncio.sleep(1)  # a name of its own (names have seconds)
    backup = await owlat("backup", "now", "--data-dir", str(tmp_path), env=env)
    stdout, stderr = await asyncio.wait_for(backup.communicate(), 60)
    assert backup.returncode == 0, stderr.decode()
    assert f"written to {folder}" in stdout.decode()
    now = sorted(path.name for path in folder.glob("owlat-backup-*Z.zip"))
    assert len(now) == 2 and now[0] == kept[-1] and now[1] in stdout.decode()


async def test_bad_backup_settings_stop_the_start(tmp_path: Path) -> None:
    process = await owlat(
        "serve", "--data-dir", str(tmp_path), env={"OWLAT_BACKUP_SCHEDULE": "nightly"}
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode != 0
    assert (
        "OWLAT_BACKUP_SCHEDULE: expected daily@HH:MM (UTC, e.g. daily@03:30) or every N "
        "followed by s, m, h or d (e.g. every 6h), got 'nightly'" in stderr.decode()
    )
