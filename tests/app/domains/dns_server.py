"""A real DNS server for tests: dnslib on 127.0.0.1, UDP and TCP on one free port.

Tests publish zone-file lines (`publish("x.example.com. 300 IN TXT \"a\" \"b\"")`), make a
name answer SERVFAIL (`servfail(name)`) or never answer (`drop(name)`). Other names are
NXDOMAIN; a name with records but none of the asked type answers NOERROR with no data.
UDP answers over 512 bytes are truncated, so long records come back over TCP, as they do
from real servers without EDNS.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from dnslib import QTYPE, RCODE, RR, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

UDP_LIMIT = 512  # bytes of a UDP answer without EDNS (RFC 1035 §4.2.1)


def _key(name: Any) -> str:
    return str(name).lower().rstrip(".")


class _Zone(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.records: dict[str, list[RR]] = defaultdict(list)
        self.servfail: set[str] = set()
        self.dropped: set[str] = set()
        self.queries: list[tuple[str, str, str]] = []  # (name, type, "udp" | "tcp")
        self.lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        name, qtype = _key(request.q.qname), request.q.qtype
        reply = request.reply()
        with self.lock:
            self.queries.append((name, QTYPE[qtype], handler.protocol))
            if name in self.dropped:
                raise DNSError(f"dropping the query for {name}")
            if name in self.servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            if name not in self.records:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            # Chase CNAMEs inside the zone, as an authoritative server does.
            for _ in range(8):
                rrs = self.records.get(name, [])
                wanted = [rr for rr in rrs if rr.rtype == qtype]
                cname = [rr for rr in rrs if rr.rtype == QTYPE.CNAME]
                if wanted or not cname:
                    reply.add_answer(*wanted)
                    break
                reply.add_answer(*cname)
                name = _key(cname[0].rdata.label)
        return reply


class _Handler(DNSHandler):  # type: ignore[misc]
    def get_reply(self, data: bytes) -> bytes:
        """dnslib's own truncation drops the question, which resolvers refuse; a real
        server's truncated answer keeps it."""
        request = DNSRecord.parse(data)
        packed: bytes = self.server.resolver.resolve(request, self).pack()
        if self.protocol == "udp" and len(packed) > UDP_LIMIT:
            truncated = request.reply()
            truncated.header.tc = 1
            packed = truncated.pack()
        return packed


class DnsServer:
    def __init__(self, zone: _Zone, port: int, servers: list[DNSServer]) -> None:
        self._zone = zone
        self.port = port
        self._servers = servers

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[DnsServer]:
        zone = _Zone()
        quiet = DNSLogger("-request,-reply,-truncated,-error", logf=lambda *_: None)
        port, servers = _bind_both(zone, quiet)
        for server in servers:
            server.start_thread()
        try:
            yield cls(zone, port, servers)
        finally:
            for server in servers:
                server.stop()
                server.server.server_close()

    def publish(self, *zone_lines: str) -> None:
        with self._zone.lock:
            for line in zone_lines:
                for rr in RR.fromZone(line):
                    self._zone.records[_key(rr.rname)].append(rr)

    def servfail(self, name: str) -> None:
        with self._zone.lock:
            self._zone.servfail.add(_key(name))

    def drop(self, name: str) -> None:
        with self._zone.lock:
            self._zone.dropped.add(_key(name))

    def clear(self) -> None:
        with self._zone.lock:
            self._zone.records.clear()
            self._zone.servfail.clear()
            self._zone.dropped.clear()
            self._zone.queries.clear()

    @property
    def queries(self) -> list[tuple[str, str, str]]:
        with self._zone.lock:
            return list(self._zone.queries)


def _bind_both(zone: _Zone, logger: DNSLogger) -> tuple[int, list[DNSServer]]:
    """A port free for UDP and TCP alike, with a server bound on each."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        try:
            udp = DNSServer(zone, "127.0.0.1", port, logger=logger, handler=_Handler)
        except OSError:
            continue
        try:
            tcp = DNSServer(zone, "127.0.0.1", port, tcp=True, logger=logger, handler=_Handler)
        except OSError:
            udp.server.server_close()
            continue
        return port, [udp, tcp]
    raise RuntimeError("no port free for both UDP and TCP")
