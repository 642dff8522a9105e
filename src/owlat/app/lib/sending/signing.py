"""The signing processes: a batch's messages composed and DKIM-signed in other processes
(`pooled_composition.py`: a campaign's batch, a transactional claim).

An RSA-2048 signature costs ~0.3 ms of CPU and `cryptography` holds the GIL while it
signs (threads sign one at a time: measured, session 9), so signing on the event loop's
process takes a third of a campaign's CPU there and blocks every other delivery while it
runs. `in_pool` sends a batch to a process pool in a few chunks (one per signing
process, not one IPC round trip per message) and gets back each chunk's results; the
event loop goes on with other workers' I/O meanwhile.

The pool is started lazily with `forkserver` (never `fork` from a process with threads)
and has `processes()` workers; each loads a key once (`signer`, kept per key). The
private key's PEM travels with each chunk (a few hundred bytes next to the messages):
a worker needs no access to the sealed secrets. The pool is process-wide; it stops at
interpreter exit (`ProcessPoolExecutor`'s own exit hook) or with `shutdown`. A process
killed outright (kill -9) runs no hook, and a pool's worker never notices (it holds both
ends of its own task pipe, and with them the forkserver's): each signing process watches
the process whose pool it is (`_exit_with`) and exits when that one has ended.

Results are the ones the same function gives here. A batch smaller than `POOL_MIN` is
done here: the round trip would cost more than it saves. A signing process that dies
(killed, out of memory) breaks the pool: the batch is done here instead, and the next
one starts a fresh pool, so no message of the batch is lost or sent twice (nothing was
sent before its signature). An exception the function raises is raised to the caller
as it would be here.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from owlat.app.lib.sending.dkim import DkimSigner

POOL_MIN = 4  # messages: a smaller batch is composed and signed in this process
MAX_PROCESSES = 4

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def processes() -> int:
    """Signing processes: one core is left to the event loop's process."""
    return max(1, min(MAX_PROCESSES, (os.cpu_count() or 1) - 1))


async def in_pool(
    remote: Callable[[Sequence[_Item]], list[_Result]],
    here: Callable[[Sequence[_Item]], list[_Result]],
    items: Sequence[_Item],
) -> list[_Result]:
    """`remote` (a picklable function of a chunk of `items`) run in the signing processes
    on a few chunks of `items` (one per process), the results in order; `here` instead, in
    this process, for fewer than `POOL_MIN` items or when a signing process died (module
    docstring)."""
    if len(items) < POOL_MIN:
        return here(items)
    pool = _started()
    size = -(-len(items) // processes())
    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    loop = asyncio.get_running_loop()
    try:
        done = await asyncio.gather(*(loop.run_in_executor(pool, remote, c) for c in chunks))
    except BrokenProcessPool:  # a signing process died: here, a new pool next time
        _discard(pool)
        return here(items)
    return [result for results in done for result in results]


def shutdown() -> None:
    """Stop the signing processes (a new pool starts on the next `in_pool`)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _started() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            context = multiprocessing.get_context("forkserver")
            _pool = ProcessPoolExecutor(
                processes(), mp_context=context, initializer=_exit_with, initargs=(os.getpid(),)
            )
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


def _exit_with(parent: int) -> None:
    """In a signing process: exit as soon as process `parent` has ended (a thread waits on
    its pidfd; where there is none, it looks every second)."""

    def watch() -> None:
        try:
            select.select([os.pidfd_open(parent)], [], [])
        except (AttributeError, OSError):  # no pidfd here, or `parent` is already gone
            while _alive(parent):
                time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="owlat-signing-parent", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, as another user
        pass
    return True


@functools.lru_cache(maxsize=64)
def signer(domain: str, selector: str, private_key_pem: str) -> DkimSigner:
    """The signer of this key, made once per process (in a signing process: per key)."""
    return DkimSigner(domain, selector, private_key_pem)
