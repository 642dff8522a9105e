"""Transactional sends composed in the signing processes (`pooled_composition.py` through
`sends.prepare_all`): the same MIME as composing here for the same claims (but the Date,
the multipart boundaries and the signature's time), each message personalized for its
own send (content, variables, footer links, language), attachments intact, signatures
valid; a send that cannot be composed is that send's error, in its place; a signing
process killed between claims loses nothing (the claim is composed here)."""

from __future__ import annotations

import functools
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest

from owlat.app.lib import instance
from owlat.app.lib.email_providers.configured import dkim_purpose, seal_secrets
from owlat.app.lib.email_providers.types import Attachment
from owlat.app.lib.sending import pooled_composition, sends, signing
from owlat.app.lib.sending.composition import CompositionError, SendKind, kind_headers
from owlat.app.lib.sending.pooled_composition import Composed, Item
from tests.app.conftest import BASE_URL

from .test_dkim import PAIR, dns

KEY = ("sender.test", "owlat2024", PAIR.private_key_pem)
CONTENTS = {
    "content-en": {"html": "<p>Hi {{name}}, order {{orderId}}</p>", "text": "",
                   "subject": "", "variables": ["name", "orderId"]},
    "content-de": {"html": "<p>Hallo {{name}}</p>", "text": "Hallo {{name}}",
                   "subject": "", "variables": ["name"]},
}  # fmt: skip
PDF = b"%PDF-1.4 \x00\xff" + bytes(range(256)) * 20
_BOUNDARY = re.compile(rb"=_[0-9a-f]{32}")
_DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


@pytest.fixture(autouse=True)
def fresh_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    instance.configure(tmp_path, BASE_URL, secret="e" * 64)
    monkeypatch.setattr(signing, "processes", lambda: 3)  # 3 chunks, whatever the cores
    signing.shutdown()
    yield
    signing.shutdown()


def claimed(n: int) -> dict[str, Any]:
    """A claimed send as `sends.claim` answers it: of a content (in two languages) with
    its variables and footer links, or with its own bodies; with an attachment."""
    own = n % 3 == 2
    bodies = (
        {"html": f"<p>Own {n} <a href='https://shop.test/{n}'>shop</a></p>", "text": f"Own {n}"}
        if own
        else {"contentId": ("content-en", "content-de")[n % 3], "dataVariables":
              {"name": f"Reader {n}", "orderId": f"A-{n}"}, "footerLinks":
              {"preferences": f"{BASE_URL}/p/{n}", "unsubscribe": f"{BASE_URL}/u/{n}"}}
    )  # fmt: skip
    return {
        "sendId": f"send{n}",
        "email": f"Reader {n} <r{n}@example.org>",
        "fromAddress": "Shop <shop@sender.test>",
        "replyTo": None,
        "subject": f"Order {n}",
        "headers": kind_headers(SendKind.TRANSACTIONAL),
        "deliveryKey": f"key{n}",
        "messageId": f"m{n}@sender.test",
        "claimedAt": 1.0,
        "tracking": {"baseUrl": BASE_URL} if own else None,
        "attachments": (Attachment(f"r{n}.pdf", PDF, "application/pdf"),),
        "dkim": None,
        **bodies,
    }


def items(count: int) -> list[Item]:
    return [(KEY, claimed(n)) for n in range(count)]


def compose_one() -> pooled_composition.ComposeOne:
    return functools.partial(sends.compose_claimed, CONTENTS)


def unsigned(raw: bytes) -> bytes:
    """`raw` without its DKIM-Signature field (the first), its Date and its boundaries."""
    body = raw[raw.index(b"\r\nFrom: ") + 2 :]
    return _BOUNDARY.sub(b"=_boundary", _DATE.sub(b"\r\nDate: -\r\n", b"\r\n" + body))


def expect_same(pooled: list[Composed], here: list[Composed]) -> None:
    assert len(pooled) == len(here)
    for one, other in zip(pooled, here, strict=True):
        if isinstance(other, CompositionError):
            assert isinstance(one, CompositionError) and str(one) == str(other)
            continue
        assert not isinstance(one, CompositionError) and one.raw is not None
        assert other.raw is not None and one.raw.startswith(b"DKIM-Signature: ")
        assert dkim.verify(one.raw, dnsfunc=dns)
        assert unsigned(one.raw) == unsigned(other.raw)
        assert (one.to, one.message_id) == (other.to, other.message_id)


async def test_the_signing_processes_compose_what_composing_here_does() -> None:
    batch = items(7)
    pooled = await pooled_composition.compose_all(compose_one(), batch)
    assert signing._pool is not None  # composed in the signing processes
    here = pooled_composition.composed(compose_one(), 0.0, batch)
    expect_same(pooled, here)
    for n, message in enumerate(pooled):
        assert not isinstance(message, CompositionError) and message.raw is not None
        raw = message.raw
        assert f"To: Reader {n} <r{n}@example.org>\r\n".encode() in raw
        if n % 3 == 0:
            assert f"Hi Reader {n}, order A-{n}".encode() in raw and f"/u/{n}".encode() in raw
        elif n % 3 == 1:
            assert f"Hallo Reader {n}".encode() in raw and f"/u/{n}".encode() in raw
        else:  # its own bodies, its link tracked
            assert f"Own {n}".encode() in raw and f"/shop.test/{n}".encode() not in raw
        assert b'Content-Disposition: attachment; filename="r%d.pdf"' % n in raw


async def test_a_send_that_cannot_be_composed_is_its_own_error_in_its_place() -> None:
    batch = items(6)
    broken = dict(batch[3][1], headers={"X-Bad": "a\r\nBcc: evil@example.org"})
    batch[3] = (KEY, broken)
    pooled = await pooled_composition.compose_all(compose_one(), batch)
    assert isinstance(pooled[3], CompositionError) and "line break" in str(pooled[3])
    expect_same(pooled, pooled_composition.composed(compose_one(), 0.0, batch))


async def test_a_signing_process_killed_between_claims_loses_nothing() -> None:
    batch = items(6)
    await pooled_composition.compose_all(compose_one(), batch)
    assert signing._pool is not None
    first = set(signing._pool._processes or {})
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    here = pooled_composition.composed(compose_one(), 0.0, batch)
    expect_same(await pooled_composition.compose_all(compose_one(), batch), here)
    expect_same(await pooled_composition.compose_all(compose_one(), batch), here)
    assert signing._pool is not None and not set(signing._pool._processes or {}) & first


async def test_prepare_all_signs_with_each_sends_key_and_fails_a_key_that_does_not_open() -> None:
    batch = [dict(item, dkim=None) for _, item in items(5)]
    batch[1]["dkim"] = {"domain": "sender.test", "selector": "s", "privateKey": "not sealed"}
    prepared = await sends.prepare_all("org", batch, CONTENTS)
    assert sorted(prepared) == sorted(item["sendId"] for item in batch)
    assert isinstance(prepared["send1"], CompositionError)
    for send_id in ("send0", "send2", "send3", "send4"):
        message = prepared[send_id]
        assert not isinstance(message, CompositionError) and message.raw is not None
        assert message.raw.startswith(b"From: ")  # no key: unsigned


async def test_prepare_all_signs_the_sends_whose_key_opens() -> None:
    sealed = seal_secrets("org", dkim_purpose(KEY[0]), {"privateKey": KEY[2]})
    dkim_key = {"domain": KEY[0], "selector": KEY[1], "privateKey": sealed}
    batch = [dict(item, dkim=dkim_key if n % 2 else None) for n, (_, item) in enumerate(items(5))]
    prepared = await sends.prepare_all("org", batch, CONTENTS)
    for n, item in enumerate(batch):
        message = prepared[item["sendId"]]
        assert not isinstance(message, CompositionError) and message.raw is not None
        assert message.raw.startswith(b"DKIM-Signature: " if n % 2 else b"From: ")
        assert not n % 2 or dkim.verify(message.raw, dnsfunc=dns)


async def test_without_fields_only_the_mime_bytes_come_back() -> None:
    """A route whose providers all take MIME bytes (not Resend's fields) gets messages
    without their bodies and attachments a second time; the bytes are the same."""
    batch = items(6)
    lean = await pooled_composition.compose_all(compose_one(), batch, fields=False)
    assert signing._pool is not None
    full = pooled_composition.composed(compose_one(), 0.0, batch)
    expect_same(lean, full)
    for message in lean:
        assert not isinstance(message, CompositionError)
        assert (message.html, message.text, message.attachments) == (None, "", ())
        assert message.from_address == "Shop <shop@sender.test>" and message.raw is not None
    assert all(m.html and m.attachments for m in full if not isinstance(m, CompositionError))
