"""Lease renewal (issue 17): the CPU a renewal costs, next to the claim it keeps alive.

    .venv/bin/python bench/bench_lease_renewal.py [--sends 2000] [--batch 20] [--rounds 2]

In one process, on SQLite in a temporary folder (the real owlat.app, no scheduler):
`--sends` system mails are enqueued, then per round
  - claim (the baseline): `transactionalSends:claim` of `--batch` sends at a time, under a
    journal name, as a delivery group claims them;
  - renew: `transactionalSends:renew` of the same claims, `--batch` at a time, as a
    delivery's `Renewal` renews a group's claims every lease/3;
  - run: a `Renewal` entered and left around a claim (`Renewal.claimed`) without any
    renewal due: what every delivery run pays when it ends within lease/3;
then the claims are undone (back to `queued`) for the next round.
Printed: process CPU per send of each (`time.process_time`), the ratio renew/claim, and
the run's cost per send. At the default lease (15 minutes) a send pays one renew for each
5 minutes it stays in delivery, so nothing in a delivery that takes less.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from owlat.app.lib import instance  # noqa: E402
from owlat.app.lib.sending import journal, leases  # noqa: E402
from owlat.app.lib.sending.composition import SendKind  # noqa: E402
from owlat.app.lib.sending.sends import SendRequest, enqueue_send  # noqa: E402
from owlat.runtime import internal, internal_action  # noqa: E402
from owlat.runtime.application import Application  # noqa: E402
from owlat.runtime.testing import in_mutation, open_test_app  # noqa: E402

LEASE_MS = 900_000.0
CLAIM = "transactionalSends:claim"


async def _enqueue(owlat: Application, count: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 200):

        async def enqueue(ctx: Any, start: int = start) -> list[str]:
            return [
                await enqueue_send(
                    ctx,
                    SendRequest(None, SendKind.SYSTEM, f"r{i}@example.org", "Hi", "Hi"),
                )
                for i in range(start, min(count, start + 200))
            ]

        ids += await in_mutation(owlat, enqueue)
    return ids


async def _requeue(owlat: Application, ids: list[str]) -> None:
    async def undo(ctx: Any) -> None:
        for send_id in ids:
            row = await ctx.db.get(send_id)
            await ctx.db.patch(send_id, {"status": "queued", "attempts": row["attempts"] - 1})

    await in_mutation(owlat, undo)


async def _round(owlat: Application, ids: list[str], batch: int, name: str) -> dict[str, float]:
    groups = [ids[i : i + batch] for i in range(0, len(ids), batch)]
    claim = {"routeProviders": ["outbox"], "leaseMs": LEASE_MS, "journal": name}
    started = time.process_time()
    claimed = []
    for group in groups:
        answer = await owlat.run_mutation(CLAIM, {**claim, "sendIds": group}, internal=True)
        claimed.append(
            [{"sendId": c["sendId"], "claimedAt": c["claimedAt"]} for c in answer.value["claimed"]]
        )
    claim_cpu = time.process_time() - started
    assert sum(map(len, claimed)) == len(ids)
    started = time.process_time()
    for claims in claimed:
        args = {"claims": claims, "journal": name}
        renewed = await owlat.run_mutation("transactionalSends:renew", args, internal=True)
        assert len(renewed.value) == len(claims)
    renew_cpu = time.process_time() - started
    await _requeue(owlat, ids)
    return {"claim": claim_cpu / len(ids), "renew": renew_cpu / len(ids)}


async def _runs(owlat: Application, count: int, number: int) -> float:
    """CPU per `Renewal` entered and left around a (trivial) claim, no renewal due."""
    own = journal.opened(instance.current().data_dir)

    async def run(ctx: Any, args: Any) -> float:
        async def answer() -> dict[str, Any]:
            return {"claimed": [{"sendId": "x", "claimedAt": 1.0}]}

        started = time.process_time()
        for _ in range(count):
            async with leases.Renewal(ctx, internal.transactional_sends.renew, LEASE_MS, own) as r:
                await r.claimed(answer(), "claimed")
        return (time.process_time() - started) / count

    owlat.package.functions.add(f"bench:runs{number}", internal_action(run))
    return float((await owlat.run_action(f"bench:runs{number}", {}, internal=True)).value)


async def main(sends: int, batch: int, rounds: int) -> None:
    print(f"load average {_load()}; {sends} sends, claims of {batch}")
    with tempfile.TemporaryDirectory() as folder:
        instance.configure(Path(folder), "http://127.0.0.1:3211")
        async with open_test_app("owlat.app", Path(folder), scheduler_parallelism=None) as owlat:
            own = journal.opened(Path(folder))
            assert own is not None
            ids = await _enqueue(owlat, sends)
            best: dict[str, float] = {}
            for number in range(1, rounds + 1):
                figures = await _round(owlat, ids, batch, own.name)
                figures["run"] = await _runs(owlat, 2000, number)
                print(
                    f"round {number} (load {_load()}): "
                    f"claim {figures['claim'] * 1e6:.1f} us/send (baseline), "
                    f"renew {figures['renew'] * 1e6:.1f} us/send "
                    f"({figures['renew'] / figures['claim']:.2f} x claim), "
                    f"Renewal per run {figures['run'] * 1e6:.1f} us"
                )
                best = {k: min(v, best.get(k, v)) for k, v in figures.items()}
    print(
        f"best: claim {best['claim'] * 1e6:.1f} us/send, renew {best['renew'] * 1e6:.1f} us/send "
        f"({best['renew'] / best['claim']:.2f} x claim), Renewal {best['run'] * 1e6:.1f} us/run "
        f"({best['run'] / batch * 1e6:.2f} us/send in runs of {batch}); at the default lease "
        f"a send pays one renew per {LEASE_MS / 3 / 60_000:.0f} minutes it stays in delivery"
    )


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    asyncio.run(main(options.sends, options.batch, options.rounds))
