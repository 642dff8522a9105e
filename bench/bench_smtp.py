"""SMTP delivery: Owlat's SMTP provider vs a raw aiosmtplib loop (issue 16).

    .venv/bin/python bench/bench_smtp.py [--messages 20000] [--connections 8] [--rounds 2]
                                         [--journal]

`--messages` personalized campaign messages (own To, subject, text, HTML, one-click
unsubscribe URL, List-Id, Feedback-ID, DKIM-signed) are prepared first with
`composition.prepare`, on every core (that cost is printed, not measured below). A sink
runs in its own process: aiosmtpd on 127.0.0.1 (uvloop when installed) that accepts and
counts every message, answering `VRFY count` with its count.

Each round sends every message twice, once per contender, each over `--connections`
persistent connections to the sink:
  - raw: aiosmtplib directly, one coroutine per connection calling `sendmail` with the
    prepared bytes;
  - owlat: `SmtpProvider(max_connections=N).send(prepared message)` for all messages at
    once (the provider's pool and slots do the queueing, as they do under the scheduler).
Printed per run: msg/s, and the CPU time per message of the sending process and of the
sink (on a shared machine wall-clock rates swing with the neighbours' load; CPU per message
does not, and shows which side is the limit). Then the best round of each, the ratio
owlat/raw of rates and of sender CPU, and the sink's count check (every message exactly
once). Goals: owlat >= 1500 msg/s and >= 0.7 x raw. With `--journal`, each owlat message
carries its claim's attempt journal (`sending/journal.py`, a file in a temporary folder),
written as a delivery does (issues 16 and 17, session 13: its cost per message).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import cpu_seconds  # also puts src/ on the path

FROM = "Owlat News <news@sender.test>"

# -- the sink (its own process) -----------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 2.0.0 Ok: queued"

    async def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        return f"252 {self.count}"

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        """Offer PIPELINING (RFC 2920), as real relays do (aiosmtpd reads pipelined
        commands in order but does not say so itself)."""
        session.host_name = hostname
        return [responses[0], "250-PIPELINING", *responses[1:]]


def serve_sink(info: Path) -> None:
    from aiosmtpd.smtp import SMTP

    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    counter = Counter()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(
            lambda: SMTP(counter, loop=loop, hostname="sink.test"), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        info.with_suffix(".tmp").write_text(json.dumps({"port": port, "pid": os.getpid()}))
        info.with_suffix(".tmp").rename(info)
        await stop.wait()
        server.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


class Sink:
    def __init__(self, folder: Path) -> None:
        self.info = folder / "sink.json"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "sink", "--info", str(self.info)]
        )
        deadline = time.monotonic() + 30
        while not self.info.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sink did not start")
            time.sleep(0.02)
        self.port = int(json.loads(self.info.read_text())["port"])
        self.pid = self.process.pid

    async def count(self) -> int:
        import aiosmtplib

        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, start_tls=False)
        await client.connect()
        answer = await client.vrfy("count")
        await client.quit()
        return int(answer.message)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- messages ---------------------------------------------------------------------------------


def _prepare_range(bounds: tuple[int, int, str]) -> list[Any]:
    from owlat.app.lib.email_providers.types import EmailMessage
    from owlat.app.lib.sending.composition import (
        SendKind,
        feedback_id,
        kind_headers,
        list_id_header,
        prepare,
    )
    from owlat.app.lib.sending.dkim import DkimSigner

    start, stop, key_pem = bounds
    signer = DkimSigner("sender.test", "owlat1", key_pem)
    list_id = list_id_header("Weekly news", "list_0001", "sender.test")
    prepared = []
    for i in range(start, stop):
        name = f"Reader {i}"
        paragraph = f"<p>Dear {name}, here is what happened this week at Owlat. </p>" * 12
        message = EmailMessage(
            to=f"{name} <reader{i}@example.org>",
            subject=f"{name}, your weekly news #{i % 97}",
            text=f"Dear {name},\n\n" + "Here is what happened this week at Owlat.\n" * 12,
            html=f"<html><body>{paragraph}</body></html>",
            from_address=FROM,
            idempotency_key=f"send:campaign_1:contact_{i}",
            headers=kind_headers(
                SendKind.CAMPAIGN,
                unsubscribe_url=f"https://owlat.example/unsub/contact_{i}%3A1700000000000%3Asig{i}",
                list_id=list_id,
                feedback_id=feedback_id("campaign_1", "org_1", SendKind.CAMPAIGN),
            ),
        )
        prepared.append(prepare(message, dkim=signer))
    return prepared


def prepare_messages(count: int) -> tuple[list[Any], float]:
    from owlat.app.lib.sending.dkim import generate_key_pair

    pem = generate_key_pair().private_key_pem
    workers = os.cpu_count() or 1
    step = -(-count // (workers * 4))
    chunks = [(start, min(count, start + step), pem) for start in range(0, count, step)]
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        messages = [m for chunk in pool.map(_prepare_range, chunks) for m in chunk]
    return messages, time.perf_counter() - started


# -- the contenders -----------------------------------------------------------------------------


async def send_raw(port: int, envelopes: list[tuple[str, str, bytes]], connections: int) -> float:
    import aiosmtplib

    clients = [
        aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        for _ in range(connections)
    ]
    await asyncio.gather(*(client.connect() for client in clients))
    queue: Iterator[tuple[str, str, bytes]] = iter(envelopes)

    async def work(client: aiosmtplib.SMTP) -> None:
        for sender, recipient, raw in queue:
            await client.sendmail(sender, [recipient], raw)

    started = time.perf_counter()
    await asyncio.gather(*(work(client) for client in clients))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(client.quit() for client in clients))
    return elapsed


async def send_owlat(port: int, messages: list[Any], connections: int) -> float:
    from owlat.app.lib.email_providers.smtp import SmtpProvider, SmtpSettings

    provider = SmtpProvider(
        SmtpSettings(host="127.0.0.1", port=port, security="none", max_connections=connections)
    )
    started = time.perf_counter()
    await asyncio.gather(*(provider.send(message) for message in messages))
    elapsed = time.perf_counter() - started
    await provider.close()
    return elapsed


def journaled(messages: list[Any], folder: Path) -> list[Any]:
    """The messages, each with its own claim's attempt journal `noter` (one journal)."""
    from owlat.app.lib.sending import journal

    boot = journal.boot_id()
    assert boot is not None, "no boot id: no journal"
    attempts = journal.Journal(folder, boot)
    return [
        dataclasses.replace(m, on_attempt=attempts.noter(f"send{i}", 1.7e12))
        for i, m in enumerate(messages)
    ]


async def bench(options: argparse.Namespace) -> None:
    from owlat.app.lib.sending.composition import envelope

    print(f"preparing {options.messages} messages ...", flush=True)
    messages, preparing = prepare_messages(options.messages)
    size = sum(len(m.raw) for m in messages) / len(messages)
    print(
        f"  {preparing:.1f} s on {os.cpu_count()} cores "
        f"({len(messages) / preparing:.0f} msg/s), {size / 1024:.1f} KiB each"
    )
    envelopes = [(*envelope(m), m.raw) for m in messages]
    best: dict[str, float] = {"raw": 0.0, "owlat": 0.0}
    sender_cpu: dict[str, float] = {"raw": float("inf"), "owlat": float("inf")}
    with tempfile.TemporaryDirectory() as folder:
        if options.journal:
            messages = journaled(messages, Path(folder) / "journal")
        sink = Sink(Path(folder))
        try:
            expected = 0
            for round_number in range(1, options.rounds + 1):
                for name in ("raw", "owlat"):
                    cpu, sink_cpu = time.process_time(), cpu_seconds(sink.pid)
                    if name == "raw":
                        elapsed = await send_raw(sink.port, envelopes, options.connections)
                    else:
                        elapsed = await send_owlat(sink.port, messages, options.connections)
                    per_message = (time.process_time() - cpu) / len(messages) * 1e6
                    sink_per_message = (cpu_seconds(sink.pid) - sink_cpu) / len(messages) * 1e6
                    expected += len(messages)
                    rate = len(messages) / elapsed
                    best[name] = max(best[name], rate)
                    sender_cpu[name] = min(sender_cpu[name], per_message)
                    print(
                        f"round {round_number} {name:>5}: {rate:6.0f} msg/s ({elapsed:5.2f} s)"
                        f"   sender {per_message:4.0f} us/msg   sink {sink_per_message:4.0f}"
                        " us/msg",
                        flush=True,
                    )
            counted = await sink.count()
        finally:
            sink.stop()
    print(f"sink counted {counted} of {expected} messages sent")
    print(
        f"raw aiosmtplib: {best['raw']:.0f} msg/s   owlat SmtpProvider: {best['owlat']:.0f} "
        f"msg/s   ratio {best['owlat'] / best['raw']:.2f}   ({options.connections} connections)"
    )
    print(
        f"sender CPU per message: raw {sender_cpu['raw']:.0f} us, owlat "
        f"{sender_cpu['owlat']:.0f} us (raw/owlat {sender_cpu['raw'] / sender_cpu['owlat']:.2f})"
    )
    if counted != expected:
        raise SystemExit("the sink did not receive every message exactly once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", nargs="?", choices=["bench", "sink"], default="bench")
    parser.add_argument("--info", type=Path)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--journal", action="store_true")
    options = parser.parse_args()
    if options.kind == "sink":
        serve_sink(options.info)
        return
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(bench(options))


if __name__ == "__main__":
    main()
