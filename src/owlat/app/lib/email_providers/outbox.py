"""The local outbox: each message becomes one `.eml` file in `<data_dir>/outbox/`.

The development provider and the tests' fake: nothing leaves the machine. File names
start with a sortable timestamp; a message with an idempotency key that was already
written is not written again. The file holds the bytes SMTP would send (`composition`).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

from owlat.app.lib.email_providers.types import EmailMessage, ErrorKind, ProviderError, SendResult
from owlat.app.lib.sending.composition import wire


class OutboxProvider:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    async def send(self, message: EmailMessage) -> SendResult:
        return await asyncio.to_thread(self._write, message)

    async def check(self) -> str:
        """The folder exists (or can be made) and takes a file."""
        return await asyncio.to_thread(self._check)

    def _check(self) -> str:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / ".check.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            text = f"the outbox folder {self.folder} takes no file: {error}"
            raise ProviderError(ErrorKind.SERVER_ERROR, text, provider="outbox") from None
        return f"messages are written to {self.folder}"

    def _write(self, message: EmailMessage) -> SendResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        key = message.idempotency_key
        stem = f"{time.time_ns():020d}-{_safe(key) if key else uuid.uuid4().hex}"
        if key is not None:
            existing = next(self.folder.glob(f"*-{_safe(key)}.eml"), None)
            if existing is not None:
                return SendResult(existing.stem)
            stem = self._name_of(_safe(key), stem)
            if (self.folder / f"{stem}.eml").exists():
                return SendResult(stem)
        _, raw = wire(message)
        partial = self.folder / f".{stem}.{uuid.uuid4().hex}.tmp"
        partial.write_bytes(raw)
        partial.rename(self.folder / f"{stem}.eml")
        return SendResult(stem)

    def _name_of(self, key: str, stem: str) -> str:
        """The file name every delivery of `key` writes under: the first proposal (`stem`)
        wins, through a hard link made only when its name is free. Two deliveries of one key
        at once (a send recovered while its first delivery still runs) then rename onto the
        same name, and one file is left, even if one of them died before writing."""
        note = self.folder / f".{stem}.claim"
        note.write_text(stem)
        try:
            os.link(note, self.folder / f".key-{key}")
        except FileExistsError:
            return (self.folder / f".key-{key}").read_text()
        finally:
            note.unlink()
        return stem


def _safe(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in key)[:120]
