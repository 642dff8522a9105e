"""DKIM: messages signed here verify with dkimpy against the published key; altering a
signed header or the body, or adding a second From or List-Unsubscribe, breaks them."""

from __future__ import annotations

import base64
import random
import re

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dkim.canonicalization import CanonicalizationPolicy

from owlat.app.lib.email_providers.types import EmailMessage
from owlat.app.lib.sending import dkim as dkim_module
from owlat.app.lib.sending.composition import Composer, SendKind, kind_headers, prepare
from owlat.app.lib.sending.dkim import (
    DkimSigner,
    dns_name,
    generate_key_pair,
    relaxed_body,
    relaxed_headers,
    select_headers,
)

PAIR = generate_key_pair()
SIGNER = DkimSigner("Sender.test", "owlat2024", PAIR.private_key_pem)


def dns(name: bytes, timeout: float = 5) -> bytes:
    """The DNS of the test: only the selector's TXT record exists."""
    return PAIR.dns_value.encode() if name == b"owlat2024._domainkey.sender.test." else b""


def signed(now: float = 1_700_000_000) -> bytes:
    message = EmailMessage(
        to="Ada <ada@example.org>",
        subject="Spring news",
        text="Hello\n.\nBye",
        html="<p>Hi</p>",
        from_address="Owlat <news@sender.test>",
        idempotency_key="send:1",
        headers=kind_headers(SendKind.CAMPAIGN, unsubscribe_url="https://s.test/unsub/tok"),
    )
    raw = prepare(message, dkim=SIGNER, now=now).raw
    assert raw is not None
    return raw


def test_a_signed_message_verifies_with_dkimpy() -> None:
    raw = signed()
    assert dkim.verify(raw, dnsfunc=dns)
    verifier = dkim.DKIM(raw)
    assert verifier.verify(dnsfunc=dns)
    tags = verifier.signature_fields
    assert tags[b"a"] == b"rsa-sha256"
    assert tags[b"c"] == b"relaxed/relaxed"
    assert (tags[b"d"], tags[b"s"], tags[b"t"]) == (b"sender.test", b"owlat2024", b"1700000000")
    signed_names = [name.strip() for name in tags[b"h"].split(b":")]
    for name in (
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
        b"mime-version",
        b"content-type",
    ):
        assert name in signed_names
    assert signed_names.count(b"from") == 2  # over-signed
    assert signed_names.count(b"list-unsubscribe") == 2


@pytest.mark.parametrize(
    "tamper",
    [
        lambda raw: raw.replace(b"Subject: Spring news", b"Subject: Spring sale"),
        lambda raw: raw.replace(b"<p>Hi</p>", b"<p>Ho</p>"),
        lambda raw: raw.replace(b"\r\n\r\n", b"\r\nFrom: evil@attacker.test\r\n\r\n", 1),
        lambda raw: raw.replace(
            b"\r\n\r\n", b"\r\nList-Unsubscribe: <https://attacker.test/>\r\n\r\n", 1
        ),
        lambda raw: raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b""),
    ],
)
def test_tampering_breaks_the_signature(tamper: object) -> None:
    raw = signed()
    changed = tamper(raw)  # type: ignore[operator]
    assert changed != raw
    assert not dkim.verify(changed, dnsfunc=dns)


def test_relaxed_canonicalization_survives_refolding() -> None:
    raw = signed().replace(b"Subject: Spring news", b"Subject:  Spring\r\n  news")
    assert dkim.verify(raw, dnsfunc=dns)


def test_a_key_pair_is_2048_bit_rsa_published_as_p() -> None:
    pair = generate_key_pair()
    private = serialization.load_pem_private_key(pair.private_key_pem.encode(), None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    public = serialization.load_der_public_key(base64.b64decode(pair.public_key))
    assert public.public_numbers() == private.public_key().public_numbers()  # type: ignore[union-attr]
    assert pair.dns_value == f"v=DKIM1; k=rsa; p={pair.public_key}"
    assert dns_name("owlat2024", "sender.test") == "owlat2024._domainkey.sender.test"


def test_a_non_rsa_key_is_refused() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="RSA private key"):
        DkimSigner("sender.test", "s", pem)


def test_the_relaxed_body_is_dkimpys_byte_for_byte() -> None:
    relaxed = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    pieces = [b"a", b" ", b"  ", b"\t", b"\t \t", b"\r\n", b"\r\n\r\n", b"x y", b"\r"]
    chance = random.Random(16)
    for _ in range(20_000):
        body = b"".join(chance.choice(pieces) for _ in range(chance.randint(0, 24)))
        assert relaxed_body(body) == relaxed.canonicalize_body(body), body


def test_the_fields_to_sign_are_those_dkimpy_selects() -> None:
    chance = random.Random(18)
    names = [b"from", b"to", b"subject", b"list-unsubscribe", b"x-a"]
    for _ in range(5_000):
        canonical = [
            (chance.choice(names), b"v%d\r\n" % index) for index in range(chance.randint(0, 8))
        ]
        include = [chance.choice(names) for _ in range(chance.randint(0, 8))]
        assert select_headers(canonical, include) == dkim.select_headers(canonical, include)


def test_the_relaxed_headers_are_dkimpys_and_so_is_the_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast header canonicalization (`relaxed_headers`) gives dkimpy's fields for
    folded, tabbed, encoded and odd-spaced headers, and the signature is byte for byte
    the one made with dkimpy's parser and canonicalization (RSA PKCS#1 v1.5 is
    deterministic), and verifies."""
    relaxed = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    pieces = [b"a", b" ", b"  ", b"\t", b"\r\n ", b"\r\n\t", b":", b"x y", b"=?utf-8?q?=C3?="]
    chance = random.Random(17)
    for _ in range(3_000):
        lines = [
            b"%s:%s\r\n" % (name, b"".join(chance.choice(pieces) for _ in range(9)))
            for name in chance.sample([b"From", b"To", b"Subject", b"X-a", b"List-Id"], 3)
        ]
        block = b"".join(lines)
        headers, _ = dkim.rfc822_parse(block + b"\r\nbody\r\n")
        assert relaxed_headers(block) == relaxed.canonicalize_headers(headers), block
    assert relaxed_headers(b"not a header line\r\n") is None
    message = EmailMessage(
        to="Jöhn Doe <john@example.org>",
        subject="Frühling: " + "news " * 60 + "\tend",
        text="Hello  there \n",
        from_address="Owlat <news@sender.test>",
        idempotency_key="send:2",
        headers=kind_headers(
            SendKind.CAMPAIGN, unsubscribe_url="https://s.test/unsub/" + "t" * 1200
        ),
    )
    unsigned = prepare(message, now=1_700_000_000).raw
    assert unsigned is not None
    ours = SIGNER.sign(unsigned, now=1_700_000_000)
    monkeypatch.setattr(dkim_module, "relaxed_headers", lambda block: None)
    assert SIGNER.sign(unsigned, now=1_700_000_000) == ours  # dkimpy's canonicalization
    assert dkim.verify(ours, dnsfunc=dns)


def test_messages_of_one_batch_composer_verify_with_dkimpy() -> None:
    """Messages composed by one `Composer` (the header lines they share written once)
    are signed as each alone would be: the same bytes, and dkimpy verifies them."""
    composer = Composer()
    for index, (to, subject) in enumerate(
        [("ada@example.org", "Spring news"), ("Jörg <j@example.org>", "Grüße ✓ " + "x " * 80)] * 2
    ):
        message = EmailMessage(
            to=to,
            subject=subject,
            text=f"Hello {index}  \n" + "é" * index,
            html=f"<p>Hi {index}</p>",
            from_address="Owlat <news@sender.test>",
            idempotency_key=f"send:{index}",
            headers=kind_headers(
                SendKind.CAMPAIGN, unsubscribe_url=f"https://s.test/unsub/t{index}"
            ),
        )
        raw = prepare(message, dkim=SIGNER, now=1_700_000_000, composer=composer).raw
        alone = prepare(message, dkim=SIGNER, now=1_700_000_000).raw
        assert raw is not None and alone is not None
        boundaries = re.compile(rb"=_[0-9a-f]{32}")  # random per message: the one difference
        assert boundaries.sub(b"", raw.split(b"\r\n\r\n", 1)[1]) == boundaries.sub(
            b"", alone.split(b"\r\n\r\n", 1)[1]
        )
        assert dkim.verify(raw, dnsfunc=dns)
