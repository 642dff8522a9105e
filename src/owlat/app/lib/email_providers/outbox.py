"""The local outbox: each message becomes one `.eml` file in `<data_dir>/outbox/`.

The development provider and the tests' fake: nothing leaves the machine. File names
start with a sortable timestamp; a message with an idempotency key that was already
written is not written again.
"""

from __future__ import annotations

import asyncio
import email.policy
import time
import uuid
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from owlat.app.lib.email_providers.types import EmailMessage, SendResult


class OutboxProvider:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    async def send(self, message: EmailMessage) -> SendResult:
        return await asyncio.to_thread(self._write, message)

    def _write(self, message: EmailMessage) -> SendResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        key = message.idempotency_key
        if key is not None:
            existing = next(self.folder.glob(f"*-{_safe(key)}.eml"), None)
            if existing is not None:
                return SendResult(existing.stem)
        mime = MimeMessage(policy=email.policy.SMTP)
        mime["From"] = message.from_address
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = formatdate(localtime=False)
        mime["Message-ID"] = make_msgid(domain="owlat.local")
        for name, value in message.headers.items():
            mime[name] = value
        mime.set_content(message.text)
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
        stem = f"{time.time_ns():020d}-{_safe(key) if key else uuid.uuid4().hex}"
        partial = self.folder / f".{stem}.tmp"
        partial.write_bytes(mime.as_bytes())
        partial.rename(self.folder / f"{stem}.eml")
        return SendResult(stem)


def _safe(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in key)[:120]
