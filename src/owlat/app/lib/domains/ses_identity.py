"""A sending domain's identity at Amazon SES, through boto3 in a worker thread.

Registration is SES's classic identity API, as upstream does it (§12.2):
`VerifyDomainIdentity` (→ the `_amazonses` verification token), `VerifyDomainDkim` (→ three
DKIM tokens, published as CNAMEs) and `SetIdentityMailFromDomain` (the custom MAIL FROM
domain). SES v2's `CreateEmailIdentity` verifies by DKIM alone and issues no verification
token; both APIs manage the same identities. The provider check asks SES whether the domain
and its DKIM are verified. Every boto3/botocore error stops here as `SesError`, whose
message names the call and SES's reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from owlat.app.lib.domains.verification import CheckResult, CheckStatus

T = TypeVar("T")
# Registration runs in a user's request: a few quick retries, and no call hangs for long.
_CLIENT_CONFIG = botocore.config.Config(
    connect_timeout=10, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}
)


class SesError(Exception):
    """SES refused a call or could not be reached."""


@dataclasses.dataclass(frozen=True)
class SesSettings:
    region: str
    access_key_id: str | None = None  # None: boto3's usual credential chain
    secret_access_key: str | None = None
    endpoint_url: str | None = None  # another SES-compatible endpoint (tests: moto_server)


@dataclasses.dataclass(frozen=True)
class SesIdentity:
    verification_token: str
    dkim_tokens: tuple[str, ...]
    mail_from_domain: str


class SesIdentities:
    """SES identity calls for one account and region; one client, shared by the threads."""

    def __init__(self, settings: SesSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    async def register(self, domain: str, mail_from_domain: str) -> SesIdentity:
        """Create (or refresh) the identity; returns the tokens the records publish."""

        def call(client: Any) -> SesIdentity:
            token = client.verify_domain_identity(Domain=domain)["VerificationToken"]
            dkim = client.verify_domain_dkim(Domain=domain)["DkimTokens"]
            client.set_identity_mail_from_domain(
                Identity=domain,
                MailFromDomain=mail_from_domain,
                BehaviorOnMXFailure="UseDefaultValue",
            )
            return SesIdentity(token, tuple(dkim), mail_from_domain)

        return await self._run("register the domain", call)

    async def check(self, domain: str) -> CheckResult:
        """The provider check: SES's verdict on the domain and its DKIM. An SES error
        decides nothing (`retry`): an outage must not fail a verified domain."""

        def call(client: Any) -> tuple[str | None, str | None]:
            verification = client.get_identity_verification_attributes(Identities=[domain])
            dkim = client.get_identity_dkim_attributes(Identities=[domain])
            return (
                verification["VerificationAttributes"].get(domain, {}).get("VerificationStatus"),
                dkim["DkimAttributes"].get(domain, {}).get("DkimVerificationStatus"),
            )

        try:
            verification, dkim = await self._run("check the domain", call)
        except SesError as error:
            return CheckResult("provider", "SES", CheckStatus.RETRY, str(error))
        return identity_check(domain, verification, dkim)

    async def delete(self, domain: str) -> None:
        await self._run("delete the domain", lambda client: client.delete_identity(Identity=domain))

    async def _run(self, what: str, call: Callable[[Any], T]) -> T:
        def run() -> T:
            try:
                return call(self._get_client())
            except botocore.exceptions.ClientError as error:
                info = error.response.get("Error", {})
                reason = f"{info.get('Code', 'Error')}: {info.get('Message', '')}".rstrip(": ")
                raise SesError(f"SES could not {what}: {reason}") from None
            except botocore.exceptions.BotoCoreError as error:
                raise SesError(f"SES could not {what}: {error}") from None

        return await asyncio.to_thread(run)

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                s = self.settings
                self._client = boto3.client(
                    "ses",
                    region_name=s.region,
                    endpoint_url=s.endpoint_url,
                    aws_access_key_id=s.access_key_id,
                    aws_secret_access_key=s.secret_access_key,
                    config=_CLIENT_CONFIG,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def identity_check(domain: str, verification: str | None, dkim: str | None) -> CheckResult:
    """SES's statuses (`Success`, `Pending`, `Failed`, `TemporaryFailure`, `NotStarted`, or
    none for an unknown identity) as the provider's check result."""
    found = (f"verification {verification or 'absent'}", f"DKIM {dkim or 'absent'}")
    if verification is None:
        reason = f"SES has no identity for {domain}; register the domain again"
        return CheckResult("provider", "SES", CheckStatus.FAILED, reason, found)
    if verification == dkim == "Success":
        return CheckResult("provider", "SES", CheckStatus.OK, "SES verified the domain", found)
    if "Failed" in (verification, dkim):
        reason = (
            f"SES could not verify {domain} ({', '.join(found)}); check the records, then "
            "register the domain again"
        )
        return CheckResult("provider", "SES", CheckStatus.FAILED, reason, found)
    reason = f"SES is still verifying {domain} ({', '.join(found)})"
    return CheckResult("provider", "SES", CheckStatus.RETRY, reason, found)
