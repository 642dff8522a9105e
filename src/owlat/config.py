"""Settings from `OWLAT_*` environment variables, each with an embedded default.

Every tunable lives here with a comment saying what it bounds; command-line options of
`owlat` override the environment.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


@dataclasses.dataclass(frozen=True)
class Settings:
    # Python package of the app to serve (schema.py + function modules).
    app: str = "owlat.app"
    # Folder for the SQLite database, file storage, keys and the local outbox.
    data_dir: Path = Path(".owlat")
    # PostgreSQL URL (postgresql://...); empty means the embedded SQLite engine.
    database_url: str = ""
    # SQLite `synchronous` mode: NORMAL survives process crashes, FULL also power loss.
    sqlite_synchronous: str = "NORMAL"
    # Client API (Convex HTTP API + sync WebSocket).
    host: str = "127.0.0.1"
    port: int = 3210
    # HTTP actions (REST API, webhooks, public pages).
    site_port: int = 3211

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            app=env.get("OWLAT_APP") or cls.app,
            data_dir=Path(env.get("OWLAT_DATA_DIR") or cls.data_dir),
            database_url=env.get("OWLAT_DATABASE_URL", ""),
            sqlite_synchronous=env.get("OWLAT_SQLITE_SYNCHRONOUS") or cls.sqlite_synchronous,
            host=env.get("OWLAT_HOST") or cls.host,
            port=_int("OWLAT_PORT", cls.port),
            site_port=_int("OWLAT_SITE_PORT", cls.site_port),
        )

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "owlat.sqlite3"
