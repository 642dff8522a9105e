"""Settings from `OWLAT_*` environment variables, each with an embedded default.

Every tunable lives here with a comment saying what it bounds; command-line options of
`owlat` override the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from pathlib import Path

from owlat.runtime.auth import TrustedIssuer
from owlat.runtime.database.engines import DEFAULT_POOL_SIZE

# A larger pool would only queue transactions inside PostgreSQL instead of in the process.
MAX_DATABASE_POOL_SIZE = 1000
IMPORT_MAX_BYTES = 256 * 1024 * 1024
MEDIA_MAX_BYTES = 50 * 1024 * 1024
SEND_LEASE_SECONDS = 900


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


def _int_between(name: str, default: int, low: int, high: int) -> int:
    value = _int(name, default)
    if not low <= value <= high:
        raise SystemExit(f"{name} must be between {low} and {high}, got {value}")
    return value


def _backup_schedule(name: str) -> str:
    from owlat.runtime.backups import BackupSchedule

    text = os.environ.get(name, "").strip()
    if text:
        try:
            BackupSchedule.parse(text)
        except ValueError as error:
            raise SystemExit(f"{name}: {error}") from None
    return text


def _backup_to(name: str, bucket: str) -> str:
    value = os.environ.get(name, "").strip().lower() or "folder"
    if value not in ("folder", "s3"):
        raise SystemExit(f"{name} must be folder or s3, got {value!r}")
    if value == "s3" and not bucket:
        raise SystemExit(f"{name}=s3 needs a bucket: set OWLAT_STORAGE_BUCKET (and its endpoint)")
    return value


def _rates(name: str) -> str:
    """`name=messages per second` pairs, comma-separated (lib/campaigns/throttle.py)."""
    from owlat.app.lib.campaigns.throttle import parse_rates

    text = os.environ.get(name, "").strip()
    try:
        parse_rates(text, name)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    return text


def _flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SystemExit(f"{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def _issuers(name: str) -> tuple[TrustedIssuer, ...]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ()
    try:
        entries = json.loads(raw)
        if not isinstance(entries, list):
            raise ValueError("expected a JSON list of issuer objects")
        return tuple(TrustedIssuer.from_config(entry) for entry in entries)
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise SystemExit(f"{name} is not valid: {error}") from None


def _networks(name: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses or networks, each written as a network."""
    entries = [e.strip() for e in os.environ.get(name, "").split(",") if e.strip()]
    networks = []
    for entry in entries:
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise SystemExit(
                f"{name} must list IP addresses or networks (e.g. 10.0.0.5, 10.0.0.0/8), "
                f"got {entry!r}"
            ) from None
    return tuple(networks)


def _nameservers(name: str) -> tuple[tuple[str, int], ...]:
    """Comma-separated `address[:port]` entries (IPv6 as `[::1]:53`), one port for all."""
    entries = [e.strip() for e in os.environ.get(name, "").split(",") if e.strip()]
    servers = []
    for entry in entries:
        host, port = entry, "53"
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":") or port
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        try:
            address = str(ipaddress.ip_address(host))
            number = int(port)
            if not 0 < number < 65536:
                raise ValueError
        except ValueError:
            raise SystemExit(
                f"{name} must list DNS server addresses with an optional port "
                f"(e.g. 10.0.0.2, 127.0.0.1:5353, [::1]:53), got {entry!r}"
            ) from None
        servers.append((address, number))
    if len({port for _, port in servers}) > 1:
        raise SystemExit(f"{name}: every DNS server must use the same port")
    return tuple(servers)


@dataclasses.dataclass(frozen=True)
class Settings:
    # Python package of the app to serve (schema.py + function modules).
    app: str = "owlat.app"
    # Folder for the SQLite database, file storage, keys and the local outbox.
    data_dir: Path = Path(".owlat")
    # PostgreSQL URL (postgresql://...); empty means the embedded SQLite engine.
    database_url: str = ""
    # PostgreSQL connections per server process (each running transaction holds one; SQLite
    # ignores it). Mind the server's max_connections: nodes × pool size must stay below it.
    database_pool_size: int = DEFAULT_POOL_SIZE
    # SQLite `synchronous` mode: NORMAL survives process crashes, FULL also power loss.
    sqlite_synchronous: str = "NORMAL"
    # Client API (Convex HTTP API + sync WebSocket).
    host: str = "127.0.0.1"
    port: int = 3210
    # HTTP actions (REST API, webhooks, public pages).
    site_port: int = 3211
    # -- HTTP connections, both ports (runtime/server/connections.py) --
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: comma-separated
    # addresses or networks (10.0.0.5, 10.0.0.0/8, ::1). Empty: nobody's, loopback included;
    # the client is the TCP peer. Listed proxies are exempt from the connection cap below.
    trusted_proxies: tuple[str, ...] = ()
    # Seconds to send a request line and headers, from connecting (or from the first byte of
    # the next request on a kept-alive connection); then 408 and the connection is closed.
    http_header_timeout: int = 10
    # Seconds to send a request body, plus one per 500 bytes received; then it is closed.
    http_body_timeout: int = 20
    # Open connections (HTTP and WebSocket) per client address; more are refused with 503.
    # 0: no cap.
    max_connections_per_address: int = 100
    # Origin of the file URLs the runtime hands out (ctx.storage.get_url and
    # generate_upload_url): where browsers reach the client API. Empty: http://<host>:<port>
    # of the client API, i.e. http://127.0.0.1:3210 by default; set it behind a proxy.
    public_url: str = ""
    # Key that signs upload URLs (any string of 16+ characters; nodes must share it).
    # Empty: generated on first use and kept in <data_dir>/storage_key.
    storage_signing_key: str = ""
    # File contents go to <data_dir>/storage unless a bucket of S3-compatible object storage
    # is named. Endpoint empty: AWS; credentials empty: boto3's default chain (AWS_* env
    # vars, profiles, instance roles); prefix: prepended to every object key.
    storage_bucket: str = ""
    storage_endpoint: str = ""
    storage_region: str = ""
    storage_access_key_id: str = ""
    storage_secret_access_key: str = ""
    storage_prefix: str = ""
    # Issuers whose user JWTs are accepted (`Authorization: Bearer`, sync `Authenticate`).
    # OWLAT_AUTH_ISSUERS is a JSON list of objects with the fields of `TrustedIssuer`:
    #   [{"issuer": "https://auth.example.com", "audience": "owlat",
    #     "jwks_url": "https://auth.example.com/.well-known/jwks.json"}]
    # Keys come from one of "jwks" (inline JWKS object), "jwks_url" or "public_key_pem";
    # "algorithms" defaults to ["RS256", "ES256", "EdDSA"]. Empty: no user tokens accepted.
    auth_issuers: tuple[TrustedIssuer, ...] = ()
    # The deployment's admin key. Empty: generated on first start and kept in
    # <data_dir>/admin_key (set it explicitly when several nodes must share one key).
    admin_key: str = ""
    # Scheduled functions and crons run at most this many at a time per server process;
    # 0: this process runs none (an API node beside a node that runs them, on PostgreSQL).
    scheduler_parallelism: int = 8
    # -- operations (runtime/metrics.py, runtime/server/operations.py) --
    # Count calls, commits, conflicts, sockets... for GET /metrics (OWLAT_METRICS=0: off).
    metrics: bool = True
    # A token that may read /metrics (`Authorization: Bearer <token>`) besides the admin key,
    # for a Prometheus that should not hold the admin key. Empty: the admin key only.
    metrics_token: str = ""
    # -- scheduled backups (runtime/backups.py), taken by `owlat serve/dev` --
    # When: "daily@HH:MM" (UTC) or "every N<s|m|h|d>" (e.g. "every 6h"). Empty: no backups.
    backup_schedule: str = ""
    # How many backups to keep (older ones are deleted after each new one).
    backup_keep: int = 7
    # Where: "folder" (<data_dir>/backups) or "s3" (the storage bucket, under backup_prefix).
    backup_to: str = "folder"
    backup_prefix: str = "backups/"
    # Seconds a graceful stop (SIGTERM/SIGINT) gives in-flight requests, sync sockets'
    # mutations and running scheduled jobs to finish before they are cut.
    shutdown_timeout: int = 30
    # -- Owlat's own auth (owlat.app) --
    # Public URL of the site port, where /api/auth lives; the issuer and audience of the
    # JWTs Owlat signs. Empty: http://<host>:<site port>.
    site_url: str = ""
    # Public URL of the web app, for links in emails. Empty: the site URL.
    app_url: str = ""
    # HMAC key of session cookies. Empty: generated in <data_dir>/auth_secret.
    auth_secret: str = ""
    # Comma-separated origins allowed to POST to /api/auth with a cookie (the site's own
    # origin always is) and that callback URLs in mails and redirects may lead to (besides
    # the site's and the web app's).
    trusted_origins: tuple[str, ...] = ()
    # New accounts wait on the waitlist until a platform admin approves them (OWLAT_WAITLIST=1).
    waitlist: bool = False
    # Sign-up does not sign in and unverified accounts cannot sign in.
    require_email_verification: bool = False
    # The largest CSV file a contact import's upload URL accepts, in bytes (a larger upload
    # is refused with 413 as it streams). 256 MiB: about 2.5 million rows of six columns.
    import_max_bytes: int = IMPORT_MAX_BYTES
    # The largest image a media upload URL accepts, in bytes (413 past it, as it streams).
    media_max_bytes: int = MEDIA_MAX_BYTES
    # -- sending domains and email providers (owlat.app) --
    # DNS servers that sending and tracking domains are verified against, as
    # "address[:port],..." (one port for all). Empty: the system's resolvers.
    dns_nameservers: tuple[tuple[str, int], ...] = ()
    # Resend's API and Amazon SES's endpoint, for every organization (another
    # SES-compatible endpoint, a proxy). Empty: Resend's and AWS's own. Operator settings,
    # never an organization's: a URL chosen by a tenant would let it reach internal hosts.
    resend_api_url: str = ""
    ses_endpoint_url: str = ""
    # -- provider webhooks (POST /webhooks/ses, /webhooks/resend; owlat.app) --
    # The SNS topics (ARNs, comma-separated) whose SES notifications Owlat accepts; empty:
    # /webhooks/ses answers 503. The Svix signing secret (whsec_...) of the Resend webhook;
    # empty: /webhooks/resend answers 503.
    ses_sns_topic_arns: tuple[str, ...] = ()
    resend_webhook_secret: str = ""
    # The built dashboard (`vite build` of web/) that `owlat dev/serve` serve at / of the site
    # port. Empty: the build inside the installed package (src/owlat/web/).
    web_dir: Path | None = None
    # Seconds a send may stay claimed (`sending`) or `queued` before the recovery cron takes
    # it for interrupted by a crash: re-sent where the provider dedupes, else failed as
    # DELIVERY_UNCERTAIN. Far above one delivery's worst case (about 5 minutes of retries);
    # lower only to recover faster in tests.
    send_lease_seconds: int = SEND_LEASE_SECONDS
    # An organization's SMTP relay may be on a private, loopback or link-local address
    # (OWLAT_ALLOW_PRIVATE_SMTP=1: self-hosters relaying through their own LAN server).
    # Off: such a relay is refused when saved and when connected to, except that `owlat
    # dev` allows loopback sinks. Every tenant of the instance gets this reach.
    allow_private_smtp: bool = False
    # Campaign delivery rates, messages per second (lib/campaigns/throttle.py): per
    # provider kind ("ses=14,smtp=200"), per receiving domain by default (0: unlimited)
    # and for some domains ("gmail.com=50"). Empty or 0: unlimited.
    provider_rates: str = ""
    domain_rate: float = 0.0
    domain_rates: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            app=env.get("OWLAT_APP") or cls.app,
            data_dir=Path(env.get("OWLAT_DATA_DIR") or cls.data_dir),
            database_url=env.get("OWLAT_DATABASE_URL", ""),
            database_pool_size=_int_between(
                "OWLAT_DATABASE_POOL_SIZE", cls.database_pool_size, 1, MAX_DATABASE_POOL_SIZE
            ),
            sqlite_synchronous=env.get("OWLAT_SQLITE_SYNCHRONOUS") or cls.sqlite_synchronous,
            host=env.get("OWLAT_HOST") or cls.host,
            port=_int("OWLAT_PORT", cls.port),
            site_port=_int("OWLAT_SITE_PORT", cls.site_port),
            trusted_proxies=_networks("OWLAT_TRUSTED_PROXIES"),
            http_header_timeout=_int_between(
                "OWLAT_HTTP_HEADER_TIMEOUT", cls.http_header_timeout, 1, 3600
            ),
            http_body_timeout=_int_between(
                "OWLAT_HTTP_BODY_TIMEOUT", cls.http_body_timeout, 1, 3600
            ),
            max_connections_per_address=_int_between(
                "OWLAT_MAX_CONNECTIONS_PER_ADDRESS", cls.max_connections_per_address, 0, 1_000_000
            ),
            public_url=env.get("OWLAT_PUBLIC_URL", "").strip(),
            storage_signing_key=env.get("OWLAT_STORAGE_SIGNING_KEY", "").strip(),
            storage_bucket=env.get("OWLAT_STORAGE_BUCKET", "").strip(),
            storage_endpoint=env.get("OWLAT_STORAGE_ENDPOINT", "").strip(),
            storage_region=env.get("OWLAT_STORAGE_REGION", "").strip(),
            storage_access_key_id=env.get("OWLAT_STORAGE_ACCESS_KEY_ID", "").strip(),
            storage_secret_access_key=env.get("OWLAT_STORAGE_SECRET_ACCESS_KEY", "").strip(),
            storage_prefix=env.get("OWLAT_STORAGE_PREFIX", "").strip(),
            auth_issuers=_issuers("OWLAT_AUTH_ISSUERS"),
            admin_key=env.get("OWLAT_ADMIN_KEY", "").strip(),
            scheduler_parallelism=_int_between(
                "OWLAT_SCHEDULER_PARALLELISM", cls.scheduler_parallelism, 0, 10_000
            ),
            metrics=_flag("OWLAT_METRICS", cls.metrics),
            metrics_token=env.get("OWLAT_METRICS_TOKEN", "").strip(),
            backup_schedule=_backup_schedule("OWLAT_BACKUP_SCHEDULE"),
            backup_keep=_int_between("OWLAT_BACKUP_KEEP", cls.backup_keep, 1, 100_000),
            backup_to=_backup_to("OWLAT_BACKUP_TO", env.get("OWLAT_STORAGE_BUCKET", "").strip()),
            backup_prefix=env.get("OWLAT_BACKUP_PREFIX", cls.backup_prefix).strip(),
            shutdown_timeout=_int_between("OWLAT_SHUTDOWN_TIMEOUT", cls.shutdown_timeout, 0, 3600),
            site_url=env.get("OWLAT_SITE_URL", "").strip(),
            app_url=env.get("OWLAT_APP_URL", "").strip(),
            auth_secret=env.get("OWLAT_AUTH_SECRET", "").strip(),
            trusted_origins=tuple(
                o.strip() for o in env.get("OWLAT_TRUSTED_ORIGINS", "").split(",") if o.strip()
            ),
            waitlist=_flag("OWLAT_WAITLIST"),
            require_email_verification=_flag("OWLAT_REQUIRE_EMAIL_VERIFICATION"),
            import_max_bytes=_int_between(
                "OWLAT_IMPORT_MAX_BYTES", cls.import_max_bytes, 1, 1 << 62
            ),
            media_max_bytes=_int_between("OWLAT_MEDIA_MAX_BYTES", cls.media_max_bytes, 1, 1 << 40),
            dns_nameservers=_nameservers("OWLAT_DNS_NAMESERVERS"),
            resend_api_url=env.get("OWLAT_RESEND_API_URL", "").strip(),
            ses_endpoint_url=env.get("OWLAT_SES_ENDPOINT_URL", "").strip(),
            ses_sns_topic_arns=tuple(
                arn.strip()
                for arn in env.get("OWLAT_SES_SNS_TOPIC_ARNS", "").split(",")
                if arn.strip()
            ),
            resend_webhook_secret=env.get("OWLAT_RESEND_WEBHOOK_SECRET", "").strip(),
            web_dir=Path(env["OWLAT_WEB_DIR"]) if env.get("OWLAT_WEB_DIR", "").strip() else None,
            send_lease_seconds=_int_between(
                "OWLAT_SEND_LEASE_SECONDS", cls.send_lease_seconds, 1, 86_400
            ),
            allow_private_smtp=_flag("OWLAT_ALLOW_PRIVATE_SMTP"),
            provider_rates=_rates("OWLAT_PROVIDER_RATES"),
            domain_rate=_int_between("OWLAT_DOMAIN_RATE", 0, 0, 1_000_000),
            domain_rates=_rates("OWLAT_DOMAIN_RATES"),
        )

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "owlat.sqlite3"
