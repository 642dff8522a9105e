"""Fixtures for the sending-domain library: a real DNS server on loopback and a checker
that asks it (and nothing else)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from owlat.app.lib.domains.verification import DnsChecker
from tests.app.domains.dns_server import DnsServer


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer.running() as server:
        yield server


@pytest.fixture
def dns(dns_server: DnsServer) -> DnsServer:
    """The module's DNS server with empty zones."""
    dns_server.clear()
    return dns_server


@pytest.fixture
def checker(dns: DnsServer) -> DnsChecker:
    return DnsChecker(["127.0.0.1"], port=dns.port, timeout=1.0)
