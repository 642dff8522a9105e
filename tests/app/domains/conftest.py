"""Fixtures for the sending-domain library: a real DNS server on loopback and a checker
that asks it (and nothing else)."""

from __future__ import annotations

import pytest

from owlat.app.lib.domains.verification import DnsChecker
from tests.app.domains.dns_server import DnsServer


@pytest.fixture
def checker(dns: DnsServer) -> DnsChecker:
    return DnsChecker(["127.0.0.1"], port=dns.port, timeout=1.0)
