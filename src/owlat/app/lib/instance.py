"""The settings of this Owlat instance that app code needs at run time.

The server factory (`owlat dev/serve`, `owlat run`, `owlat admin ...`) calls `configure`
once with the data folder and the public URL of the site port; tests do the same. The
instance holds what auth needs: the data folder (signing key, cookie secret, outbox), the
base URL that is the JWT issuer and audience, the origins trusted for cookie POSTs, the
waitlist default, the brute-force limits, the per-address count of public token requests and
the size limits of import files and media uploads.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from argon2.profiles import RFC_9106_LOW_MEMORY

from owlat.app.lib.address_limits import AddressLimiter
from owlat.app.lib.campaigns.throttle import Rates, parse_rates
from owlat.app.lib.provider_webhooks.sns import SnsPolicy
from owlat.app.lib.sending.attachments import FetchPolicy
from owlat.config import IMPORT_MAX_BYTES, MEDIA_MAX_BYTES, SEND_LEASE_SECONDS

if TYPE_CHECKING:
    from owlat.config import Settings

SECRET_FILE = "auth_secret"
# Generous: mailbox providers send RFC 8058 one-click unsubscribes from a few addresses.
PUBLIC_REQUESTS_PER_MINUTE = 300
# Open and click tracking: upstream's 100/min per address with a burst of 150 (§15).
TRACKING_REQUESTS_PER_MINUTE = 150


@dataclasses.dataclass(frozen=True)
class PasswordCost:
    """argon2id's cost: RFC 9106's low-memory profile by default (3 passes over 64 MiB in
    4 lanes, about 0.2 s of CPU per hash or verification)."""

    time_cost: int = RFC_9106_LOW_MEMORY.time_cost
    memory_cost: int = RFC_9106_LOW_MEMORY.memory_cost  # KiB
    parallelism: int = RFC_9106_LOW_MEMORY.parallelism


@dataclasses.dataclass(frozen=True)
class Instance:
    data_dir: Path
    # Public URL of the site port (where /api/auth lives): the JWT issuer and audience.
    base_url: str
    # Public URL of the web app: links in emails (reset password, accept invitation).
    app_url: str
    # HMAC key of session cookies (generated in <data_dir>/auth_secret when not given).
    secret: bytes
    # Origins (scheme://host[:port]) allowed to POST with a cookie, besides base_url's own,
    # and that callback URLs may lead to (`lib/redirects.py`).
    trusted_origins: tuple[str, ...] = ()
    # New accounts wait for a platform admin's approval (runtime toggle overrides it).
    waitlist: bool = False
    # Sign-up does not sign in; unverified accounts cannot sign in (no enumeration at all).
    require_email_verification: bool = False
    # Brute force, per window of sign_in_window_seconds (see auth.sign_in_gate): failed
    # sign-ins on one account from one address before that address waits for that account;
    # sign-in attempts from one address (any account) before it waits; failed sign-ins on
    # one account from all addresses before the account is slowed (never locked) to one
    # attempt per sign_in_slow_seconds from devices that never signed in to it.
    sign_in_failures_per_address: int = 5
    sign_in_attempts_per_ip: int = 30
    sign_in_failures_per_account: int = 20
    sign_in_slow_seconds: int = 10
    sign_in_window_seconds: int = 900
    # argon2id's cost for new password hashes and for the dummy hash an unknown account is
    # verified against (lib/passwords.py). Tests that are not about hashing lower it.
    password_hashing: PasswordCost = PasswordCost()
    # Requests per client address per minute to the public token endpoints and pages
    # (unsubscribe, preferences, double opt-in), counted in memory before any database work.
    public_requests: AddressLimiter = dataclasses.field(
        default_factory=lambda: AddressLimiter(PUBLIC_REQUESTS_PER_MINUTE), compare=False
    )
    # Opens and clicks recorded per client address per minute (app/tracking.py); past
    # it the pixel and redirects are still served, nothing is recorded.
    tracking_requests: AddressLimiter = dataclasses.field(
        default_factory=lambda: AddressLimiter(TRACKING_REQUESTS_PER_MINUTE), compare=False
    )
    # Provider webhook requests per source and client address: upstream's 50/s with a
    # burst of 100 (§15), as 100 per 2 s.
    webhook_requests: AddressLimiter = dataclasses.field(
        default_factory=lambda: AddressLimiter(100, window=2.0), compare=False
    )
    # SNS topics whose SES notifications are accepted, the Resend webhook's Svix secret
    # (OWLAT_SES_SNS_TOPIC_ARNS, OWLAT_RESEND_WEBHOOK_SECRET; empty: that endpoint is off)
    # and where SNS certificates may be fetched from (tests only widen it, lib/
    # provider_webhooks/sns.py).
    ses_sns_topic_arns: tuple[str, ...] = ()
    resend_webhook_secret: str = ""
    sns: SnsPolicy = dataclasses.field(default_factory=SnsPolicy)
    # The largest CSV file a contact import accepts (OWLAT_IMPORT_MAX_BYTES).
    import_max_bytes: int = IMPORT_MAX_BYTES
    # The largest image a media upload accepts (OWLAT_MEDIA_MAX_BYTES).
    media_max_bytes: int = MEDIA_MAX_BYTES
    # DNS servers (address, port) that domains are verified against; empty: the system's.
    dns_nameservers: tuple[tuple[str, int], ...] = ()
    # Resend's API and SES's endpoint (OWLAT_RESEND_API_URL, OWLAT_SES_ENDPOINT_URL);
    # empty: the providers' own.
    resend_api_url: str = ""
    ses_endpoint_url: str = ""
    # `owlat dev`: development-only pages (the outbox at /dev/outbox) are served.
    development: bool = False
    # How long a send may stay `sending` (or `queued`) before recovery takes it for
    # interrupted (OWLAT_SEND_LEASE_SECONDS; lib/sending/sends.py).
    send_lease_ms: float = SEND_LEASE_SECONDS * 1000.0
    # Where attachment URLs may be fetched from: public addresses only (tests only may
    # allow loopback, lib/sending/attachments.py).
    attachment_fetch: FetchPolicy = dataclasses.field(default_factory=FetchPolicy)
    # Where outgoing webhooks may be delivered: public addresses only (tests only may
    # allow loopback, lib/webhooks/targets.py).
    webhook_fetch: FetchPolicy = dataclasses.field(default_factory=FetchPolicy)
    # Where an organization's SMTP relay may be: public addresses only, loopback too under
    # `owlat dev`; None: anywhere (OWLAT_ALLOW_PRIVATE_SMTP; lib/email_providers/
    # configured.py). Tests allow loopback for their sinks.
    smtp_hosts: FetchPolicy | None = dataclasses.field(default_factory=FetchPolicy)
    # Campaign delivery rates per provider and receiving domain (OWLAT_PROVIDER_RATES,
    # OWLAT_DOMAIN_RATE, OWLAT_DOMAIN_RATES; lib/campaigns/throttle.py): unlimited.
    delivery_rates: Rates = dataclasses.field(default_factory=Rates)

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    def origins(self) -> frozenset[str]:
        return frozenset({_origin(self.base_url), *map(_origin, self.trusted_origins)})

    def redirect_origins(self) -> frozenset[str]:
        """Origins a callback URL may lead to: the trusted ones and the web app's."""
        return self.origins() | {_origin(self.app_url)}


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}".lower()


_current: Instance | None = None


def configure(
    data_dir: Path,
    base_url: str,
    *,
    app_url: str = "",
    secret: str = "",
    **options: object,
) -> Instance:
    """Set (and return) the instance; the secret is loaded or created in `data_dir`."""
    global _current
    data_dir = Path(data_dir)
    key = secret.encode() if secret else load_or_create_secret(data_dir)
    base = base_url.rstrip("/")
    _current = Instance(
        data_dir=data_dir,
        base_url=base,
        app_url=(app_url or base).rstrip("/"),
        secret=key,
        **options,  # type: ignore[arg-type]
    )
    return _current


def current() -> Instance:
    if _current is None:
        raise RuntimeError(
            "owlat.app is not configured: call owlat.app.lib.instance.configure(...) first"
        )
    return _current


def load_or_create_secret(data_dir: Path) -> bytes:
    """The cookie-signing secret of `data_dir` (created, owner-readable only, if missing)."""
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        if not text:
            raise RuntimeError(f"{path} is empty; delete it to generate a new secret") from None
        return text.encode()
    value = secrets.token_hex(32)
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")
    return value.encode()


def configure_from_settings(
    settings: Settings, data_dir: Path, site_url: str, *, development: bool = False
) -> Instance:
    """`configure` from `owlat.config` settings (`site_url`: where the site port listens,
    used when `OWLAT_SITE_URL` is not set; `development`: run by `owlat dev`)."""
    return configure(
        data_dir,
        settings.site_url or site_url,
        app_url=settings.app_url,
        secret=settings.auth_secret,
        trusted_origins=settings.trusted_origins,
        waitlist=settings.waitlist,
        require_email_verification=settings.require_email_verification,
        import_max_bytes=settings.import_max_bytes,
        media_max_bytes=settings.media_max_bytes,
        dns_nameservers=settings.dns_nameservers,
        resend_api_url=settings.resend_api_url,
        ses_endpoint_url=settings.ses_endpoint_url,
        ses_sns_topic_arns=settings.ses_sns_topic_arns,
        resend_webhook_secret=settings.resend_webhook_secret,
        send_lease_ms=settings.send_lease_seconds * 1000.0,
        development=development,
        smtp_hosts=None if settings.allow_private_smtp else FetchPolicy(allow_loopback=development),
        delivery_rates=Rates(
            providers=parse_rates(settings.provider_rates, "OWLAT_PROVIDER_RATES"),
            domain=float(settings.domain_rate),
            domains=parse_rates(settings.domain_rates, "OWLAT_DOMAIN_RATES"),
        ),
    )
