"""Helpers of the app's sending tests (domains, providers, sends): the instance pointed at
the test's DNS server and endpoints, and waiting for a send to settle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dns.resolver import Resolver

from owlat.app.lib import instance
from owlat.app.lib.sending.attachments import FetchPolicy
from tests.app.conftest import BASE_URL, FAST, Caller
from tests.app.domains.dns_server import DnsServer

SETTLED = ("sent", "failed")
# Test only: SMTP relays on 127.0.0.1 (the tests' aiosmtpd sinks) are allowed.
LOOPBACK_SINKS = FetchPolicy(allow_loopback=True)


def configure(data_dir: Path, dns: DnsServer | None = None, **options: Any) -> None:
    """The test instance (as `owlat` configures it), with DNS checks asking `dns` only and
    SMTP relays allowed on loopback (the tests' sinks; `smtp_hosts=...` to test the rule)."""
    if dns is not None:
        options["dns_nameservers"] = (("127.0.0.1", dns.port),)
    options.setdefault("smtp_hosts", LOOPBACK_SINKS)
    instance.configure(data_dir, BASE_URL, **{**FAST, **options})


def dkim_dns(server: DnsServer) -> Callable[..., bytes]:
    """dkimpy's DNS lookup (`dnsfunc`), asking the test's DNS server."""
    resolver = Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], server.port

    def lookup(name: bytes, timeout: float = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(rdata.strings) for rdata in answer)

    return lookup


async def settled(caller: Caller, send_id: str) -> dict[str, Any]:
    """The send once it is sent or failed."""
    async with asyncio.timeout(30):
        while True:
            send: dict[str, Any] = await caller.query("transactionalSends:get", {"sendId": send_id})
            if send["status"] in SETTLED:
                return send
            await asyncio.sleep(0.02)


async def smtp_domain(owner: Caller, dns: DnsServer, domain: str) -> dict[str, Any]:
    """A verified `smtp` sending domain: added, its records published in `dns`, verified."""
    domain_id = await owner.mutation("domains:create", {"domain": domain, "providerKind": "smtp"})
    added = await owner.query("domains:get", {"domainId": domain_id})
    dns.publish(*added["zoneFile"].splitlines())
    verified: dict[str, Any] = await owner.action("dnsVerification:verify", {"domainId": domain_id})
    assert verified["status"] == "verified", verified["lastCheckSummary"]
    return verified
