"""A campaign to N contacts delivered to an SMTP sink in another process, on SQLite, next
to a raw pipelined aiosmtplib blast of the same number of prebuilt messages over the same
number of connections (issue 17).

    .venv/bin/python bench/bench_campaign.py [--contacts 100000] [--no-dkim]

Owlat runs in this process (the app with its scheduler on SQLite in a temporary folder);
the sink is `bench_smtp.py`'s (aiosmtpd in its own process, counting messages). Set-up,
not measured: an organization with SMTP to the sink (the provider's pool: 4 connections),
a sending domain verified against a loopback DNS server (its DKIM key signs every message
unless `--no-dkim`), a list of N contacts written directly (2,000 per mutation), a
published template. Measured: from `campaigns:send` to the sink counting the last
message (the walk, the claims, personalization, MIME, DKIM, SMTP and the records all
inside), with this process's peak RSS (sampled every 0.25 s) and CPU, and the CPU and
peak RSS of the DKIM signing processes (`sending/signing.py`), counted in the CPU per
message. Then the baseline:
`bench_smtp.send_raw` of N messages `bench_smtp.prepare_messages` built beforehand (DKIM
signed as well unless `--no-dkim`), over the same 4 connections, with its CPU per message
(sending alone). Profile the server side with py-spy (installed into .venv only):

    .venv/bin/py-spy record -r 100 --format raw -o prof.txt -- \
        .venv/bin/python bench/bench_campaign.py --contacts 5000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import cpu_seconds, rss_mb  # also puts src/ on the path
from bench_smtp import Sink, prepare_messages, send_raw

CONNECTIONS = 4  # the SMTP provider's pool (SmtpSettings.max_connections)
PER_MUTATION = 2000
DOMAIN = "news-example.com"


async def _audience(owlat: Any, organization_id: str, list_id: str, count: int) -> None:
    """`count` contacts, members of the list (rows written directly, as an import would)."""
    from owlat.runtime.testing import in_mutation

    for first in range(0, count, PER_MUTATION):

        async def add(ctx: Any, first: int = first) -> None:
            last = min(first + PER_MUTATION, count)
            for index in range(first, last):
                contact_id = await ctx.db.insert(
                    "contacts",
                    {"organizationId": organization_id, "email": f"reader{index}@example.org",
                     "firstName": f"Reader {index}", "source": "import", "properties": {},
                     "mailingListIds": [list_id], "createdAt": 0.0, "updatedAt": 0.0},
                )  # fmt: skip
                await ctx.db.insert(
                    "mailingListMembers",
                    {"organizationId": organization_id, "listId": list_id,
                     "contactId": contact_id, "status": "subscribed", "source": "import",
                     "addedAt": float(index)},
                )  # fmt: skip
            mailing_list = await ctx.db.get(list_id)
            await ctx.db.patch(list_id, {"memberCount": mailing_list["memberCount"] + last - first})

        await in_mutation(owlat, add)


async def run_campaign(options: argparse.Namespace, sink: Sink, folder: Path) -> dict[str, Any]:
    from tests.app.campaign_setup import ready_campaign
    from tests.app.conftest import BASE_URL, FAST, signed_in, with_organization
    from tests.app.domains.dns_server import DnsServer
    from tests.app.mail_setup import LOOPBACK_SINKS, smtp_domain

    from owlat.app.lib import instance
    from owlat.runtime.testing import in_mutation, open_test_app

    with DnsServer.running() as dns:
        nameservers = (("127.0.0.1", dns.port),)
        sinks = {"dns_nameservers": nameservers, "smtp_hosts": LOOPBACK_SINKS}
        instance.configure(folder, BASE_URL, **sinks, **FAST)  # type: ignore[arg-type]
        async with open_test_app("owlat.app", folder) as owlat:
            owner = await signed_in(owlat, "owner@bench.example")
            organization_id = await with_organization(owner, "bench")
            await owner.mutation(
                "emailProviders:saveSmtp",
                {"host": "127.0.0.1", "port": sink.port, "security": "none"},
            )
            domain = await smtp_domain(owner, dns, DOMAIN)
            if options.no_dkim:

                async def unsigned(ctx: Any) -> None:
                    from owlat.runtime import UNDEFINED

                    await ctx.db.patch(domain["_id"], {"dkimPrivateKey": UNDEFINED})

                await in_mutation(owlat, unsigned)
            list_id = await owner.mutation(
                "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
            )
            started = time.perf_counter()
            await _audience(owlat, organization_id, list_id, options.contacts)
            loaded = time.perf_counter() - started
            campaign_id = await ready_campaign(owner, list_id, f"news@{DOMAIN}")
            base = await sink.count()
            rss_peak = rss_mb(os.getpid())
            signers_rss = 0.0
            cpu_before = cpu_seconds(os.getpid())
            signers_before = _signers_cpu()
            started = time.perf_counter()
            await owner.mutation("campaigns:send", {"campaignId": campaign_id})
            received, last_seen = base, started
            while received - base < options.contacts:
                await asyncio.sleep(0.25)
                rss_peak = max(rss_peak, rss_mb(os.getpid()))
                signers_rss = max(signers_rss, sum(map(rss_mb, _signers())))
                now_received = await sink.count()
                if now_received != received:
                    received, last_seen = now_received, time.perf_counter()
                elif time.perf_counter() - last_seen > 60:
                    break
            elapsed = last_seen - started
            cpu = cpu_seconds(os.getpid()) - cpu_before
            signers_cpu = _signers_cpu() - signers_before
            progress = await owner.query("campaigns:progress", {"campaignId": campaign_id})
    count = max(1, received - base)
    return {
        "received": received - base,
        "seconds": elapsed,
        "rate": (received - base) / elapsed,
        "rss_peak_mb": rss_peak,
        "signers_rss_mb": signers_rss,
        "cpu_ms_per_message": 1000 * (cpu + signers_cpu) / count,
        "signers_cpu_ms_per_message": 1000 * signers_cpu / count,
        "load_seconds": loaded,
        "progress": progress,
    }


def _signers() -> list[int]:
    """The process ids of the DKIM signing processes running now."""
    from owlat.app.lib.sending import signing

    return [] if signing._pool is None else list(signing._pool._processes or {})


def _signers_cpu() -> float:
    return sum(map(cpu_seconds, _signers()))


async def run_raw(options: argparse.Namespace, sink: Sink) -> dict[str, Any]:
    from owlat.app.lib.sending.composition import envelope, prepare

    messages, _ = prepare_messages(options.contacts)
    if options.no_dkim:
        messages = [prepare(dataclasses.replace(m, raw=None)) for m in messages]
    envelopes = [(*envelope(m), m.raw) for m in messages]
    base = await sink.count()
    cpu_before = cpu_seconds(os.getpid())
    elapsed = await send_raw(sink.port, envelopes, CONNECTIONS)
    cpu = cpu_seconds(os.getpid()) - cpu_before
    received = await sink.count() - base
    return {"received": received, "seconds": elapsed, "rate": received / elapsed,
            "cpu_ms_per_message": 1000 * cpu / max(1, received)}  # fmt: skip


async def bench(options: argparse.Namespace) -> None:
    load = os.getloadavg()
    dkim = "off" if options.no_dkim else "on"
    print(f"{options.contacts:,} contacts, {CONNECTIONS} SMTP connections, DKIM {dkim}, "
          f"load average before {load[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        sink = Sink(Path(folder))
        try:
            owlat = await run_campaign(options, sink, Path(folder) / "data")
            print(f"owlat campaign: {owlat['received']:,} messages in {owlat['seconds']:.1f} s = "
                  f"{owlat['rate']:,.0f} msg/s, peak RSS {owlat['rss_peak_mb']:.0f} MB, "
                  f"{owlat['cpu_ms_per_message']:.2f} ms CPU/message "
                  f"(of which signing processes {owlat['signers_cpu_ms_per_message']:.2f} ms, "
                  f"their RSS {owlat['signers_rss_mb']:.0f} MB) "
                  f"(audience loaded in {owlat['load_seconds']:.1f} s)")  # fmt: skip
            print(f"  progress: {json.dumps(owlat['progress'])}")
            raw = await run_raw(options, sink)
            print(f"raw aiosmtplib blast: {raw['received']:,} messages in {raw['seconds']:.1f} s "
                  f"= {raw['rate']:,.0f} msg/s, {raw['cpu_ms_per_message']:.2f} ms CPU/message "
                  "(sending only: composing and signing were done before)")  # fmt: skip
            print(f"owlat / raw: {owlat['rate'] / raw['rate']:.2f}; load average after "
                  f"{os.getloadavg()[0]:.2f}")  # fmt: skip
        finally:
            sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--no-dkim", action="store_true", help="send unsigned messages")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
