"""The content scanner's CPU cost (lib/content_scan.py), with its baselines in the same run.

    PYTHONPATH=src .venv/bin/python bench/bench_content_scan.py [--rounds 3] [--scans 200]
        [--publishes 40]

(1) The scanner alone on the 20 KB template of bench_rendering.py (rendered once: 37 KB of
HTML + 19 KB of text): CPU ms per `scan`, against the full render of the same template
(validate + render + inline + text, what every save and publish already does), in
alternating rounds; the ratio scan / render.

(2) `transactionalEmails:publish` of an email with that content, in-process on SQLite
(unpublish between; owner caller): CPU ms per publish (render, version, write, and with
the scanner its scan). Run it again with PYTHONPATH pointing at a checkout without the
scanner for the before figure: the script uses only functions both have.

CPU is `time.process_time()` (this process, all threads); wall-clock rates on a shared
machine are noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import owlat

# that checkout's tests and bench helpers, not this file's (bench_rendering puts its own
# checkout's src/ first on the path)
CHECKOUT = Path(owlat.__file__).resolve().parents[2]
sys.path.insert(0, str(CHECKOUT))

from bench.bench_rendering import template  # noqa: E402
from tests.app.conftest import (  # noqa: E402
    BASE_URL,
    FAST,
    providers_closed,
    signed_in,
    with_organization,
)

from owlat.app.lib import instance  # noqa: E402
from owlat.app.lib.rendering import render_template, validate_content  # noqa: E402
from owlat.runtime.testing import open_test_app  # noqa: E402

SUBJECT = "{{firstName|'Hi'}}, spring is here"


def cpu_ms(work: object, count: int) -> float:
    """CPU ms per call of `work()` over `count` calls."""
    start = time.process_time()
    for _ in range(count):
        work()  # type: ignore[operator]
    return (time.process_time() - start) * 1000 / count


def scanner_rounds(rounds: int, scans: int) -> None:
    from owlat.app.lib.content_scan import scan

    content = json.dumps(template())
    rendered = render_template(validate_content(content), subject=SUBJECT)
    result = scan(rendered.subject, rendered.html, rendered.text)
    print(
        f"template: HTML {len(rendered.html) / 1000:.1f} KB + text "
        f"{len(rendered.text) / 1000:.1f} KB; scan: score {result.score}, {result.level}"
    )
    print(f"{'round':<8}{'scan ms':>10}{'render ms':>12}{'scan/render':>13}")
    for number in range(1, rounds + 1):
        scanned = cpu_ms(lambda: scan(rendered.subject, rendered.html, rendered.text), scans)
        renders = max(1, scans // 10)
        baseline = cpu_ms(
            lambda: render_template(validate_content(content), subject=SUBJECT), renders
        )
        print(f"{number:<8}{scanned:>10.2f}{baseline:>12.2f}{scanned / baseline:>13.2f}")


async def publish_rounds(rounds: int, publishes: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        data_dir = Path(directory)
        instance.configure(data_dir, BASE_URL, **FAST)  # type: ignore[arg-type]
        async with (
            providers_closed(),
            open_test_app("owlat.app", data_dir, scheduler_parallelism=None) as app,
        ):
            owner = await signed_in(app, "owner@bench.example")
            await with_organization(owner, "bench")
            email_id = await owner.mutation(
                "transactionalEmails:create",
                {"name": "Spring", "slug": "spring", "subject": "Spring is here",
                 "content": json.dumps(template())},
            )  # fmt: skip
            ident = {"transactionalEmailId": email_id}
            print(f"{'round':<8}{'publish ms':>12}")
            for number in range(1, rounds + 1):
                spent = []
                for _ in range(publishes):
                    start = time.process_time()
                    await owner.mutation("transactionalEmails:publish", ident)
                    spent.append(time.process_time() - start)
                    await owner.mutation("transactionalEmails:unpublish", ident)
                print(f"{number:<8}{statistics.median(spent) * 1000:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--publishes", type=int, default=40)
    parser.add_argument("--publish-only", action="store_true", help="skip (1): no scanner")
    options = parser.parse_args()
    print(f"checkout: {CHECKOUT}")
    if not options.publish_only:
        scanner_rounds(options.rounds, options.scans)
    print("transactionalEmails:publish, CPU ms (median of each round)")
    asyncio.run(publish_rounds(options.rounds, options.publishes))


if __name__ == "__main__":
    main()
