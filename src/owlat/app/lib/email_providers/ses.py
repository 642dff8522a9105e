"""Amazon SES provider: SES v2 `SendEmail` with the raw MIME message, through boto3.

boto3 blocks, so calls run on the provider's own threads (`max_concurrency` of them, and as
many pooled HTTP connections). botocore's retries are off: one attempt per call, the
dispatcher decides about retries from the classified error (`classify`). A call that
got no answer in time is UNKNOWN, not retried: SES may have accepted the message and
has no idempotency key to make a second call safe.
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from owlat.app.lib.email_providers.types import EmailMessage, ErrorKind, ProviderError, SendResult
from owlat.app.lib.sending.composition import envelope, wire

_BY_CODE: dict[str, ErrorKind] = {
    "TooManyRequestsException": ErrorKind.RATE_LIMIT,
    "Throttling": ErrorKind.RATE_LIMIT,
    "ThrottlingException": ErrorKind.RATE_LIMIT,
    "LimitExceededException": ErrorKind.RATE_LIMIT,
    "MailFromDomainNotVerifiedException": ErrorKind.INVALID_SENDER,
    "AccountSuspendedException": ErrorKind.INVALID_SENDER,
    "SendingPausedException": ErrorKind.INVALID_SENDER,
    "NotFoundException": ErrorKind.INVALID_SENDER,
    "UnrecognizedClientException": ErrorKind.AUTH_FAILED,
    "InvalidClientTokenId": ErrorKind.AUTH_FAILED,
    "SignatureDoesNotMatch": ErrorKind.AUTH_FAILED,
    "AccessDeniedException": ErrorKind.AUTH_FAILED,
    "ExpiredTokenException": ErrorKind.AUTH_FAILED,
    "InternalFailure": ErrorKind.SERVER_ERROR,
    "ServiceUnavailable": ErrorKind.SERVER_ERROR,
}


@dataclasses.dataclass(frozen=True)
class SesSettings:
    region: str
    # Empty: boto3's default chain (AWS_* variables, profiles, instance roles).
    access_key_id: str = ""
    secret_access_key: str = ""
    # Another endpoint than AWS's (tests: moto_server).
    endpoint_url: str = ""
    configuration_set: str = ""
    # Calls in flight at once.
    max_concurrency: int = 8
    # Seconds to connect, and to wait for the answer.
    timeout: float = 30.0


class SesProvider:
    name = "ses"

    def __init__(self, settings: SesSettings) -> None:
        self.settings = settings
        self._client: Any = boto3.session.Session().client(
            "sesv2",
            region_name=settings.region,
            endpoint_url=settings.endpoint_url or None,
            aws_access_key_id=settings.access_key_id or None,
            aws_secret_access_key=settings.secret_access_key or None,
            config=Config(
                retries={"total_max_attempts": 1},
                connect_timeout=settings.timeout,
                read_timeout=settings.timeout,
                max_pool_connections=settings.max_concurrency,
            ),
        )
        self._threads = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="ses")

    async def send(self, message: EmailMessage) -> SendResult:
        _, raw = wire(message)
        sender, recipient = envelope(message)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._send, sender, recipient, raw)

    def _send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        extra = {}
        if self.settings.configuration_set:
            extra["ConfigurationSetName"] = self.settings.configuration_set
        try:
            answer = self._client.send_email(
                FromEmailAddress=sender,
                Destination={"ToAddresses": [recipient]},
                Content={"Raw": {"Data": raw}},
                **extra,
            )
        except (BotoCoreError, ClientError) as error:
            raise classify(error, self.settings.timeout) from None
        return SendResult(str(answer["MessageId"]))

    async def check(self) -> str:
        """A signed `ListEmailIdentities` call: SES answers it only to valid credentials
        (a key allowed to send but not to list gets AccessDenied once it was recognised)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._check)

    def _check(self) -> str:
        region = self.settings.region
        try:
            answer = self._client.list_email_identities(PageSize=100)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "AccessDeniedException":
                return f"SES ({region}) recognised the key; it may not list identities"
            raise classify(error, self.settings.timeout) from None
        except BotoCoreError as error:
            raise classify(error, self.settings.timeout) from None
        identities = answer.get("EmailIdentities", [])
        verified = [i for i in identities if i.get("VerificationStatus") == "SUCCESS"]
        more = "+" if answer.get("NextToken") else ""
        return (
            f"SES ({region}) accepted the key: {len(identities)}{more} identities, "
            f"{len(verified)} verified"
        )

    async def close(self) -> None:
        self._threads.shutdown(wait=False)
        self._client.close()


def classify(error: BotoCoreError | ClientError, timeout: float) -> ProviderError:
    """The ProviderError of a boto3 failure of `SendEmail`."""
    if isinstance(error, ReadTimeoutError):
        text = f"no answer within {timeout:g} s: SES may have accepted the message"
        return ProviderError(ErrorKind.UNKNOWN, text, provider="ses")
    if isinstance(error, (ConnectTimeoutError, EndpointConnectionError)):
        return ProviderError(ErrorKind.SERVER_ERROR, f"cannot reach SES: {error}", provider="ses")
    if isinstance(error, NoCredentialsError):
        return ProviderError(ErrorKind.AUTH_FAILED, str(error), provider="ses")
    if not isinstance(error, ClientError):
        return ProviderError(ErrorKind.UNKNOWN, str(error), provider="ses")
    code = str(error.response.get("Error", {}).get("Code", ""))
    text = str(error.response.get("Error", {}).get("Message", "")) or str(error)
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    kind = _BY_CODE.get(code)
    if kind is None and code in ("MessageRejected", "BadRequestException"):
        kind = _rejection_kind(text)
    if kind is None:
        kind = ErrorKind.SERVER_ERROR if status >= 500 else ErrorKind.UNKNOWN
    return ProviderError(kind, f"{code or status}: {text}", provider="ses")


def _rejection_kind(text: str) -> ErrorKind:
    lowered = text.lower()
    if "not verified" in lowered or "authority to send" in lowered:
        return ErrorKind.INVALID_SENDER
    if "address" in lowered or "recipient" in lowered:
        return ErrorKind.INVALID_RECIPIENT
    return ErrorKind.CONTENT_REJECTED
