"""The signing processes (`sending/signing.py`), signing as `pooled_composition` has them
sign: the same bytes as signing here, verifying with dkimpy; a signing process that dies,
before or during a batch, loses no signature (the batch is signed here) and the next batch
gets a fresh pool; the processes end with the process whose pool they are."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import dkim
import pytest

from owlat.app.lib.email_providers.types import EmailMessage
from owlat.app.lib.sending import signing
from owlat.app.lib.sending.composition import Composer, SendKind, kind_headers, prepare
from owlat.app.lib.sending.dkim import DkimSigner

from .test_dkim import PAIR, SIGNER, dns

NOW = 1_700_000_000.0


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    signing.shutdown()
    yield
    signing.shutdown()


def batch(count: int) -> list[bytes]:
    composer = Composer()
    messages = []
    for index in range(count):
        message = EmailMessage(
            to=f"Reader {index} <reader{index}@example.org>",
            subject=f"News {index}",
            text=f"Hello {index}\n" * (index + 1),
            html=f"<p>Hello   {index}</p>",
            from_address="Owlat <news@sender.test>",
            idempotency_key=f"send:{index}",
            headers=kind_headers(SendKind.CAMPAIGN, unsubscribe_url=f"https://s.test/u/{index}"),
        )
        raw = prepare(message, now=NOW, composer=composer).raw
        assert raw is not None
        messages.append(raw)
    return messages


def _signatures(key: tuple[str, str, str], now: float, messages: Sequence[bytes]) -> list[bytes]:
    """The DKIM-Signature fields of `messages` (in a signing process: with its signer)."""
    return [signing.signer(*key).signature(message, now=now) for message in messages]


async def sign_all(signer: DkimSigner, messages: list[bytes], now: float) -> list[bytes]:
    """`messages` signed in the signing processes (`signing.in_pool`)."""
    sign = functools.partial(
        _signatures, (signer.domain, signer.selector, signer.private_key_pem), now
    )
    return await signing.in_pool(sign, sign, messages)


def pool_pids() -> set[int]:
    assert signing._pool is not None
    return set(signing._pool._processes or {})


def expect_signed_here(messages: list[bytes], fields: list[bytes]) -> None:
    assert fields == [SIGNER.signature(message, now=NOW) for message in messages]
    for message, field in zip(messages, fields, strict=True):
        assert dkim.verify(field + message, dnsfunc=dns)


async def test_the_pool_signs_the_bytes_signing_here_gives() -> None:
    messages = batch(3 * signing.POOL_MIN + 1)
    fields = await sign_all(SIGNER, messages, NOW)
    assert signing._pool is not None and pool_pids()  # signed in other processes
    assert all(pid != os.getpid() for pid in pool_pids())
    expect_signed_here(messages, fields)
    assert SIGNER.sign(messages[0], now=NOW) == fields[0] + messages[0]


async def test_a_small_batch_is_signed_here() -> None:
    messages = batch(signing.POOL_MIN - 1)
    expect_signed_here(messages, await sign_all(SIGNER, messages, NOW))
    assert signing._pool is None


async def test_a_signing_process_killed_between_batches_loses_nothing() -> None:
    messages = batch(2 * signing.POOL_MIN)
    expect_signed_here(messages, await sign_all(SIGNER, messages, NOW))
    first = pool_pids()
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    expect_signed_here(messages, await sign_all(SIGNER, messages, NOW))
    expect_signed_here(messages, await sign_all(SIGNER, messages, NOW))
    assert pool_pids() and not pool_pids() & first  # a fresh pool


async def test_a_signing_process_dying_during_a_batch_loses_nothing() -> None:
    messages = batch(2 * signing.POOL_MIN)
    expect_signed_here(messages, await sign_all(SIGNER, messages, NOW))
    pool = signing._pool
    assert pool is not None
    dying = pool.submit(os._exit, 1)  # queued ahead of the batch's chunks
    fields = await sign_all(SIGNER, messages, NOW)
    with pytest.raises(signing.BrokenProcessPool):
        dying.result()
    expect_signed_here(messages, fields)
    assert signing._pool is not pool


async def test_another_domains_key_is_loaded_in_the_signing_process() -> None:
    other = DkimSigner("sender.test", "owlat2024", PAIR.private_key_pem)
    messages = batch(signing.POOL_MIN)
    assert await sign_all(other, messages, NOW) == [
        other.signature(message, now=NOW) for message in messages
    ]
    wrong = DkimSigner("sender.test", "other", PAIR.private_key_pem)
    fields = await sign_all(wrong, messages, NOW)
    assert b"s=other" in fields[0] and not dkim.verify(fields[0] + messages[0], dnsfunc=dns)


SIGNING_PARENT = """
import asyncio, sys
from owlat.app.lib.sending import signing
message = b"From: a@sender.test\\r\\nSubject: x\\r\\n\\r\\nHello\\r\\n"
asyncio.run(signing.in_pool(list, list, [message] * signing.POOL_MIN))  # list: picklable
print(*signing._pool._processes, flush=True)
sys.stdin.read()
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_signing_processes_end_when_their_process_is_killed() -> None:
    command = [sys.executable, "-c", SIGNING_PARENT]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as parent:
        try:
            assert parent.stdout is not None
            workers = [int(pid) for pid in parent.stdout.readline().split()]
            assert workers and all(_running(pid) for pid in workers)
        finally:
            parent.kill()  # SIGKILL: no exit hook runs
    deadline = time.monotonic() + 10
    while any(map(_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_running, workers))
