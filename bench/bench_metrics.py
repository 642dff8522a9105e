"""What counting calls for /metrics costs a query, in process (no HTTP, so that the noise of
a loaded machine weighs less than in bench_http.py's servers).

    .venv/bin/python bench/bench_metrics.py [--calls 20000] [--rounds 7]

Two Applications of the fixture app on one SQLite file, one with metrics on (the default)
and one with them off, run `messages:get` by id through `Application.execute` (what the
HTTP API calls), `--calls` each per round, which goes first alternating; printed: the best µs per
call of each and the difference (goal: at most 3 % of `POST /api/query`'s cost).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from owlat.runtime.app_package import load_app_package
from owlat.runtime.application import Application
from owlat.runtime.database.engines import create_engine
from owlat.runtime.functions import FunctionKind

APP = "tests.fixtures.app"


async def per_call(app: Application, ids: list[str], calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        outcome = await app.execute(FunctionKind.QUERY, "messages:get", {"id": ids[i % len(ids)]})
        assert outcome.error is None, outcome.error
    return (time.perf_counter() - start) / calls * 1e6


async def main(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        apps = {
            on: Application(load_app_package(APP), create_engine(Path(folder)), metrics=on)
            for on in (True, False)
        }
        for app in apps.values():
            await app.start()
        ids = [
            (await apps[True].run_mutation("messages:send", {"channel": "c", "body": str(i)})).value
            for i in range(1000)
        ]
        best = {True: float("inf"), False: float("inf")}
        for round_ in range(rounds):
            for on in (True, False) if round_ % 2 else (False, True):  # no order favoured
                best[on] = min(best[on], await per_call(apps[on], ids, calls))
        for app in apps.values():
            await app.close()
    print(f"metrics on:  {best[True]:.1f} µs a call")
    print(f"metrics off: {best[False]:.1f} µs a call")
    cost = best[True] - best[False]
    print(f"cost: {cost:.2f} µs a call ({cost / best[False] * 100:.1f} %)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    asyncio.run(main(options.calls, options.rounds))
