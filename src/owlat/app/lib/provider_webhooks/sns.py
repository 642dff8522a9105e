"""Amazon SNS message signatures (what SES notifications arrive through).

A message is accepted when (in this order, each refusal with its status):
1. its `TopicArn` is one of the instance's (OWLAT_SES_SNS_TOPIC_ARNS) — 403; anyone can
   create a topic and publish signed messages to Owlat, only these topics speak for SES;
2. `SigningCertURL` is https, on host `sns.<region>.amazonaws.com` (or `.com.cn`) where
   region is the topic's, no user info or port, a `.pem` path — 401;
3. `Timestamp` is within `TOLERANCE_SECONDS` of now — 401;
4. `Signature` verifies with that certificate's RSA key over the canonical string:
   SignatureVersion 1 with SHA1, 2 with SHA256; the string is `key\\nvalue\\n` for
   Message, MessageId, Subject (Notification only, when present), SubscribeURL and Token
   (confirmations only), Timestamp, TopicArn, Type, in that order — 401.
Certificates are fetched over TLS (10 s, no redirects, no proxy from the environment) and
kept per URL. A `SubscriptionConfirmation` is confirmed by fetching its `SubscribeURL`,
held to the same host rule as the certificate.

`SnsPolicy` holds the production rule; its `extra_hosts` (host:port accepted besides SNS's)
and `verify` (TLS trust) exist for tests that serve a locally made certificate from
127.0.0.1: both stay at their defaults unless a test configures the instance with them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from owlat.app.lib.provider_webhooks.events import Refused, epoch_ms

TOLERANCE_SECONDS = 300
FETCH_TIMEOUT = 10.0
MAX_CACHED = 32
_HOST = re.compile(r"^sns\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS = (
    "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
)  # fmt: skip
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_certificates: dict[str, rsa.RSAPublicKey] = {}


@dataclasses.dataclass(frozen=True)
class SnsPolicy:
    """Where SNS certificates and confirmations may be fetched from (module docstring)."""

    extra_hosts: tuple[str, ...] = ()
    verify: ssl.SSLContext | bool = True


def region_of(topic_arn: str) -> str:
    parts = topic_arn.split(":")
    return parts[3] if len(parts) >= 6 and parts[:2] == ["arn", "aws"] else ""


def url_problem(url: str, region: str, policy: SnsPolicy, *, pem: bool) -> str | None:
    """Why `url` is not an SNS URL of `region` (module docstring), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme != "https" or "@" in parts.netloc:
        return "not an https URL"
    if parts.netloc in policy.extra_hosts:
        return None
    host = _HOST.match(parts.netloc)
    if host is None or host.group(1) != region:
        return f"not on sns.{region or '<region>'}.amazonaws.com"
    if pem and not parts.path.endswith(".pem"):
        return "not a .pem certificate"
    return None


def canonical(message: Mapping[str, Any]) -> bytes:
    keys = _NOTIFICATION_KEYS if message.get("Type") == "Notification" else _CONFIRMATION_KEYS
    lines = []
    for key in keys:
        value = message.get(key)
        if value is None and key == "Subject":
            continue
        if not isinstance(value, str):
            raise Refused(401, f"SNS message without {key}")
        lines.append(f"{key}\n{value}\n")
    return "".join(lines).encode()


async def _fetch(url: str, policy: SnsPolicy) -> bytes:
    async with httpx.AsyncClient(
        verify=policy.verify, trust_env=False, follow_redirects=False, timeout=FETCH_TIMEOUT
    ) as client:
        try:
            response = await client.get(url)
        except httpx.HTTPError as error:
            raise Refused(401, f"SNS URL could not be fetched: {error}") from None
    if response.status_code != 200:
        raise Refused(401, f"SNS URL answered HTTP {response.status_code}")
    return response.content


async def _public_key(url: str, policy: SnsPolicy) -> rsa.RSAPublicKey:
    key = _certificates.get(url)
    if key is None:
        try:
            certificate = x509.load_pem_x509_certificate(await _fetch(url, policy))
        except ValueError:
            raise Refused(401, "SigningCertURL is not a PEM certificate") from None
        public = certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise Refused(401, "SNS certificate is not an RSA certificate")
        if len(_certificates) >= MAX_CACHED:
            _certificates.clear()
        _certificates[url] = key = public
    return key


async def verify(message: Mapping[str, Any], topics: tuple[str, ...], policy: SnsPolicy) -> None:
    """Accept `message` or raise `Refused` (module docstring)."""
    topic = message.get("TopicArn")
    if not isinstance(topic, str) or topic not in topics:
        raise Refused(403, "Unknown TopicArn")
    region = region_of(topic)
    cert_url = message.get("SigningCertURL")
    problem = "missing" if not isinstance(cert_url, str) else None
    problem = problem or url_problem(str(cert_url), region, policy, pem=True)
    if problem is not None:
        raise Refused(401, f"SigningCertURL {problem}")
    algorithm = _HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise Refused(401, "Unsupported SignatureVersion")
    sent_at = epoch_ms(message.get("Timestamp"), 0.0) / 1000
    if abs(time.time() - sent_at) > TOLERANCE_SECONDS:
        raise Refused(401, "SNS message timestamp out of tolerance")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except binascii.Error:
        raise Refused(401, "Invalid SNS signature") from None
    key = await _public_key(str(cert_url), policy)
    try:
        key.verify(signature, canonical(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Refused(401, "Invalid SNS signature") from None


async def confirm_subscription(message: Mapping[str, Any], policy: SnsPolicy) -> None:
    """Confirm a verified `SubscriptionConfirmation` by fetching its SubscribeURL."""
    url = message.get("SubscribeURL")
    region = region_of(str(message.get("TopicArn")))
    problem = "missing" if not isinstance(url, str) else None
    problem = problem or url_problem(str(url), region, policy, pem=False)
    if problem is not None:
        raise Refused(400, f"SubscribeURL {problem}")
    await _fetch(str(url), policy)
