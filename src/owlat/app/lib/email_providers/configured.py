"""An organization's configured email providers (`emailProviders` rows): checked settings,
sealed secrets, masked summaries, and the provider objects a send uses.

One row per configured kind, with its non-secret `settings` and its secrets sealed in
`credentials` (`credentials.seal`, bound to "<organizationId>/<kind>": a sealed value
copied to another organization or kind does not open). Secrets never leave through a
query: `summary` names the secrets that are set, never their values, nor a part of them.
The local `outbox` needs no row and is always available.

    kind     settings                                      secrets
    smtp     host, port, security, username, spfInclude    password (optional: no AUTH)
    ses      region, configurationSet, snsTopicArn         accessKeyId, secretAccessKey
    resend   —                                             apiKey, webhookSecret
                                                           (optional)

`snsTopicArn` and `webhookSecret` are what `POST /webhooks/ses/<organizationId>` and
`/webhooks/resend/<organizationId>` check the organization's provider events against
(`app/provider_webhooks.py`).

Resend's API URL and SES's endpoint are the operator's settings (`instance`), never an
organization's. An SMTP relay must be on a public address (`instance.smtp_hosts`): a host
that is `localhost`, `*.local` or a private, loopback or link-local IP address is refused
when saved, and every address its name resolves to is checked again at connect time
(`smtp.SmtpSettings.addresses`); `owlat dev` allows loopback sinks, the operator setting
OWLAT_ALLOW_PRIVATE_SMTP=1 any address.

DKIM private keys of sending domains are sealed the same way, bound to
"<organizationId>/dkim/<domain>".

`kept_provider` keeps a provider object open between deliveries (an SMTP provider keeps
its connections, Resend and SES their HTTP clients): one per event loop, organization,
kind, settings and sealed secrets, so a changed configuration gets a new one; the least
recently used beyond `KEPT_PROVIDERS` are closed.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from owlat.app.lib.email_providers.credentials import load_key, open_sealed, seal
from owlat.app.lib.email_providers.outbox import OutboxProvider
from owlat.app.lib.email_providers.resend import ResendProvider, ResendSettings
from owlat.app.lib.email_providers.ses import SesProvider, SesSettings
from owlat.app.lib.email_providers.smtp import SmtpProvider, SmtpSettings
from owlat.app.lib.email_providers.types import CheckableProvider, EmailProvider
from owlat.app.lib.errors import invalid
from owlat.app.lib.instance import current
from owlat.app.lib.sending.attachments import host_problem
from owlat.app.lib.sending.dkim import DkimSigner
from owlat.app.lib.standard_webhooks import PREFIX, secret_key

KINDS = ("outbox", "smtp", "ses", "resend")
CONFIGURABLE = ("smtp", "ses", "resend")
SECRETS: dict[str, tuple[str, ...]] = {
    "smtp": ("password",),
    "ses": ("accessKeyId", "secretAccessKey"),
    "resend": ("apiKey",),
}
# Providers that dedupe a repeated idempotency key: a send whose outcome a crash left
# unknown may be sent again through them (with the same key), never through the others.
IDEMPOTENT = frozenset({"outbox", "resend"})
TAKES_FIELDS = frozenset({"resend"})  # sent the bodies as fields (JSON), not the MIME bytes
SECURITY = ("starttls", "tls", "none")
MAX_SECRET = 1024
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_SPF_INCLUDE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)+$"
)
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
_CONFIGURATION_SET = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOPIC_ARN = re.compile(
    r"^arn:aws(-cn)?:sns:[a-z]{2}(-[a-z]+)+-\d{1,2}:\d{12}:[A-Za-z0-9_-]{1,256}$"
)
_USERNAME_MAX = 256


def _invalid(message: str) -> Exception:
    return invalid("INVALID_PROVIDER_SETTINGS", message)


# -- checked settings ----------------------------------------------------------------------


def clean_smtp(args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(settings, secrets) of `emailProviders:saveSmtp`'s arguments."""
    host = str(args["host"]).strip().lower().rstrip(".")
    if not (_HOST.match(host) or _is_ip(host)):
        raise _invalid(f"SMTP host must be a host name or an IP address, got {host[:80]!r}")
    policy = current().smtp_hosts
    refusal = None if policy is None else host_problem(host, policy)
    if refusal is not None:
        raise _invalid(
            f"SMTP host {host} is {refusal}: an SMTP relay must be on a public address "
            "(the operator may allow private ones with OWLAT_ALLOW_PRIVATE_SMTP=1)"
        )
    port = args.get("port", 587)
    if isinstance(port, bool) or not isinstance(port, int | float) or not 0 < port < 65536:
        raise _invalid("SMTP port must be a whole number from 1 to 65535")
    if port != int(port):
        raise _invalid("SMTP port must be a whole number from 1 to 65535")
    security = args.get("security", "starttls")
    username = str(args.get("username") or "").strip()
    if len(username) > _USERNAME_MAX or any(ch in username for ch in "\r\n\0"):
        raise _invalid(f"SMTP username must be at most {_USERNAME_MAX} characters on one line")
    settings: dict[str, Any] = {"host": host, "port": int(port), "security": security}
    if username:
        settings["username"] = username
    include = str(args.get("spfInclude") or "").strip().lower().removeprefix("include:")
    if include:
        if not _SPF_INCLUDE.match(include):
            raise _invalid(f"SPF include must be a domain such as _spf.relay.net, got {include!r}")
        settings["spfInclude"] = include
    secrets = _secrets(args, ("password",))
    if secrets and not username:
        raise _invalid("An SMTP password needs a username")
    return settings, secrets


def clean_ses(args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    region = str(args["region"]).strip().lower()
    if not _REGION.match(region):
        raise _invalid(f"SES region must be an AWS region such as eu-west-1, got {region[:40]!r}")
    settings: dict[str, Any] = {"region": region}
    configuration_set = str(args.get("configurationSet") or "").strip()
    if configuration_set:
        if not _CONFIGURATION_SET.match(configuration_set):
            raise _invalid("SES configuration set must be 1 to 64 letters, digits, _ or -")
        settings["configurationSet"] = configuration_set
    topic = str(args.get("snsTopicArn") or "").strip()
    if topic:
        if not _TOPIC_ARN.match(topic):
            raise _invalid(
                "SNS topic must be an ARN such as arn:aws:sns:eu-west-1:123456789012:ses"
            )
        settings["snsTopicArn"] = topic
    secrets = _secrets(args, SECRETS["ses"])
    key_id = secrets.get("accessKeyId")
    if key_id is not None and not _ACCESS_KEY_ID.match(key_id):
        raise _invalid("SES access key id must be 16 to 128 capital letters and digits")
    return settings, secrets


def clean_resend(args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    secrets = _secrets(args, (*SECRETS["resend"], "webhookSecret"))
    webhook_secret = secrets.get("webhookSecret")
    if webhook_secret is not None:
        try:
            if not webhook_secret.startswith(PREFIX) or len(secret_key(webhook_secret)) < 16:
                raise ValueError
        except ValueError:
            raise _invalid("Resend webhook secret must be the whsec_... signing secret") from None
    return {}, secrets


def _secrets(args: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The secrets given (an omitted or empty one keeps the stored value)."""
    secrets = {}
    for name in names:
        value = args.get(name)
        if value is None or value == "":
            continue
        if len(value) > MAX_SECRET or value != value.strip() or any(c in value for c in "\r\n\0"):
            raise _invalid(
                f"{name} must be at most {MAX_SECRET} characters, without surrounding "
                "spaces or line breaks"
            )
        secrets[name] = value
    return secrets


def required_secrets(kind: str, secrets: Mapping[str, str]) -> None:
    """Refuse a configuration missing a secret the kind cannot do without."""
    needed = () if kind == "smtp" else SECRETS[kind]
    missing = [name for name in needed if name not in secrets]
    if missing:
        raise _invalid(f"{kind} needs {' and '.join(missing)}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# -- sealed secrets --------------------------------------------------------------------------


@functools.cache
def _key(data_dir: Path) -> bytes:
    return load_key(data_dir)


def sealing_key() -> bytes:
    """The instance's key for secrets at rest (OWLAT_SECRET_KEY, else the data folder's)."""
    return _key(current().data_dir)


def seal_secrets(organization_id: str, purpose: str, secrets: Mapping[str, str]) -> str:
    return seal(sealing_key(), secrets, f"{organization_id}/{purpose}")


def open_secrets(organization_id: str, purpose: str, sealed: str) -> dict[str, str]:
    """The secrets of `sealed` (`CredentialsError` when they do not open)."""
    return open_sealed(sealing_key(), sealed, f"{organization_id}/{purpose}")


def dkim_purpose(domain: str) -> str:
    return f"dkim/{domain}"


def dkim_signer(organization_id: str, dkim: Mapping[str, str]) -> DkimSigner:
    """The signer of a domain's stored key: `{domain, selector, privateKey (sealed)}`;
    one per key, kept (loading an RSA key costs tens of milliseconds of CPU)."""
    return _signer(organization_id, dkim["domain"], dkim["selector"], dkim["privateKey"])


@functools.lru_cache(maxsize=256)
def _signer(organization_id: str, domain: str, selector: str, sealed: str) -> DkimSigner:
    secrets = open_secrets(organization_id, dkim_purpose(domain), sealed)
    return DkimSigner(domain, selector, secrets["privateKey"])


# -- rows as the dashboard sees them, and as a send uses them --------------------------------


def summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """A configured provider without its secrets: which secrets are set, not their values."""
    return {
        "_id": row["_id"],
        "kind": row["kind"],
        "settings": dict(row["settings"]),
        "secretsSet": list(row.get("secretNames") or ()),
        "createdAt": row["createdAt"],
        "updatedAt": row["updatedAt"],
    }


def build_provider(
    kind: str, settings: Mapping[str, Any], secrets: Mapping[str, str]
) -> CheckableProvider:
    """The provider object of a configuration (the outbox: the data folder's)."""
    instance = current()
    if kind == "outbox":
        return OutboxProvider(instance.outbox_dir)
    if kind == "smtp":
        return SmtpProvider(
            SmtpSettings(
                host=settings["host"],
                port=int(settings["port"]),
                security=settings["security"],
                username=settings.get("username", ""),
                password=secrets.get("password", ""),
                addresses=instance.smtp_hosts,
            )
        )
    if kind == "ses":
        return SesProvider(
            SesSettings(
                region=settings["region"],
                access_key_id=secrets["accessKeyId"],
                secret_access_key=secrets["secretAccessKey"],
                endpoint_url=instance.ses_endpoint_url,
                configuration_set=settings.get("configurationSet", ""),
            )
        )
    if kind == "resend":
        base_url = instance.resend_api_url or ResendSettings.base_url
        return ResendProvider(ResendSettings(api_key=secrets["apiKey"], base_url=base_url))
    raise ValueError(f"unknown provider kind {kind!r}")


KEPT_PROVIDERS = 32
# (event loop, organization, kind, settings, sealed secrets, operator settings) -> provider
_kept: collections.OrderedDict[tuple[Any, ...], EmailProvider] = collections.OrderedDict()


async def kept_provider(
    organization_id: str, kind: str, settings: Mapping[str, Any], credentials: str | None
) -> EmailProvider:
    """The provider of a configuration, kept open between deliveries (module docstring);
    `CredentialsError` when its secrets do not open."""
    loop = asyncio.get_running_loop()
    instance = current()
    key = (
        loop, organization_id, kind, json.dumps(dict(settings), sort_keys=True), credentials,
        instance.outbox_dir, instance.resend_api_url, instance.ses_endpoint_url,
        instance.smtp_hosts,
    )  # fmt: skip
    provider = _kept.get(key)
    if provider is not None:
        _kept.move_to_end(key)
        return provider
    opened = {} if credentials is None else open_secrets(organization_id, kind, credentials)
    provider = _kept[key] = build_provider(kind, settings, opened)
    while len(_kept) > KEPT_PROVIDERS:
        old_key, old = _kept.popitem(last=False)
        if old_key[0] is loop:  # another loop's provider went with its loop
            await close_provider(old)
    return provider


async def close_kept() -> None:
    """Close the providers kept for the running event loop (its server or test is ending):
    their connections would otherwise outlive the loop."""
    loop = asyncio.get_running_loop()
    for key in [key for key in _kept if key[0] is loop]:
        await close_provider(_kept.pop(key))


async def close_provider(provider: EmailProvider) -> None:
    close = getattr(provider, "close", None)
    if close is not None:
        await close()
