"""Tests for owlat.runtime.values.ids: Convex v6 document ids."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from owlat.runtime.errors import InvalidIdError
from owlat.runtime.values.ids import ALPHABET, decode_id, encode_id, new_id, table_number_of

table_numbers = st.integers(min_value=1, max_value=2**32 - 1)
internal_ids = st.binary(min_size=16, max_size=16)

_RFC_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ALPHABET)


def _reference_encode(table_number: int, internal_id: bytes) -> str:
    """A slow, independent encoder written straight from the format description."""
    vint = bytearray()
    n = table_number
    while True:
        if n < 0x80:
            vint.append(n)
            break
        vint.append((n & 0x7F) | 0x80)
        n >>= 7
    body = bytes(vint) + internal_id
    c0 = c1 = 0
    for byte in body:
        c0 = (c0 + byte) % 256
        c1 = (c1 + c0) % 256
    footer = (c1 << 8 | c0).to_bytes(2, "little")
    rfc = base64.b32encode(body + footer).decode().rstrip("=")
    return rfc.translate(_RFC_TO_CROCKFORD)


# The internal id of Convex's `test_document_id_stability`: 251, 251**2, ... (mod 256).
_STABILITY_INTERNAL_ID = bytes(pow(251, k, 256) for k in range(1, 17))


def test_convex_stability_vector() -> None:
    # crates/value/src/id_v6.rs, test_document_id_stability
    text = "z43zp6c3e75gkmz1kfwj6mbbx5sw281h"
    assert encode_id(1017, _STABILITY_INTERNAL_ID) == text
    assert decode_id(text) == (1017, _STABILITY_INTERNAL_ID)


def test_convex_real_id_decodes() -> None:
    # crates/value/src/sorting.rs, test_roundtrip_trophies: a real 1-byte-table id.
    text = "074wwt1x3qmwz35bvscy44eq2yngrt8"
    table_number, internal_id = decode_id(text)
    assert table_number == 1
    assert encode_id(table_number, internal_id) == text


@pytest.mark.parametrize(
    "text",
    [
        # id_v6.rs test_id_decoding_one_to_one: decodes, but not canonically.
        "mz1xn7tymdnktmmzqy5xxhn7tjs2nkkfmtjjr",
        # id_v6.rs test_invalid_table_code: looks 1-byte, but the table number takes 2.
        "sssswsgggggggggsgcsssfafffsffks",
    ],
)
def test_convex_rejected_vectors(text: str) -> None:
    with pytest.raises(InvalidIdError, match=f'^Invalid ID "{text}": '):
        decode_id(text)
    assert table_number_of(text) is None


@given(table_numbers, internal_ids)
def test_round_trip(table_number: int, internal_id: bytes) -> None:
    text = encode_id(table_number, internal_id)
    assert text == _reference_encode(table_number, internal_id)
    assert decode_id(text) == (table_number, internal_id)
    assert table_number_of(text) == table_number
    assert 31 <= len(text) <= 37
    assert set(text) <= set(ALPHABET)


@given(st.integers(min_value=1, max_value=127), internal_ids)
def test_one_byte_table_numbers_give_31_chars(table_number: int, internal_id: bytes) -> None:
    assert len(encode_id(table_number, internal_id)) == 31


@given(st.integers(min_value=128, max_value=2**14 - 1), internal_ids)
def test_two_byte_table_numbers_give_32_chars(table_number: int, internal_id: bytes) -> None:
    assert len(encode_id(table_number, internal_id)) == 32


@pytest.mark.parametrize(
    ("table_number", "length"),
    [(1, 31), (127, 31), (128, 32), (10001, 32), (2**14, 34), (2**21, 36), (2**28, 37)],
)
def test_lengths_by_table_number(table_number: int, length: int) -> None:
    assert len(new_id(table_number)) == length


def test_new_id() -> None:
    ids = {new_id(10001) for _ in range(1000)}
    assert len(ids) == 1000
    assert all(table_number_of(text) == 10001 for text in ids)


def test_new_ids_start_with_the_time_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = [new_id(10001) for _ in range(200)]
    time.sleep(0.003)
    second = [new_id(10001) for _ in range(200)]
    after = time.time_ns() // 1_000_000
    internals = [decode_id(text)[1] for text in first + second]
    assert all(before <= int.from_bytes(i[:6], "big") <= after for i in internals)
    assert len({i[6:] for i in internals}) == 400  # 80 random bits each
    # ids of a later millisecond sort after, as text (the engines' order) and as bytes
    assert max(first) < min(second)
    assert max(internals[:200]) < min(internals[200:])


@pytest.mark.parametrize("table_number", [0, -1, 2**32])
def test_encode_rejects_bad_table_numbers(table_number: int) -> None:
    with pytest.raises(ValueError, match="table number"):
        encode_id(table_number, bytes(16))
    with pytest.raises(ValueError, match="table number"):
        new_id(table_number)


def test_encode_rejects_bad_internal_id() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        encode_id(1, bytes(15))


@given(table_numbers, internal_ids, st.data())
def test_tampered_character_rejected(
    table_number: int, internal_id: bytes, data: st.DataObject
) -> None:
    text = encode_id(table_number, internal_id)
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    replacement = data.draw(st.sampled_from(ALPHABET).filter(lambda c: c != text[position]))
    tampered = text[:position] + replacement + text[position + 1 :]
    with pytest.raises(InvalidIdError):
        decode_id(tampered)
    assert table_number_of(tampered) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "wrong length 0 (an ID has 31 to 37 characters)"),
        ("0" * 30, "wrong length 30"),
        ("0" * 38, "wrong length 38"),
        ("0" * 33, "non-canonical encoding"),
        ("074wwt1x3qmwz35bvscy44eq2yngrtu", "invalid character 'u' at position 30"),
        ("074wwt1x3qmwz35bvscy44eq2yngrt9", "non-canonical encoding (padding bits"),
        ("074wwt1x3qmwz35bvscy44eq2yngrt0", "bad checksum"),
        ("074WWT1X3QMWZ35BVSCY44EQ2YNGRT8", "invalid character 'W' at position 3"),
        ("074wwt1x3qmwz35bvscy44eq2yngrté", "invalid character 'é' at position 30"),
        ("0000000000000000000000000000000", "invalid table number 0"),
    ],
)
def test_error_messages(text: str, reason: str) -> None:
    with pytest.raises(InvalidIdError) as info:
        decode_id(text)
    assert info.value.message.startswith(f'Invalid ID "{text}": {reason}')
    assert info.value.code == "InvalidId"


def test_non_minimal_table_number_rejected() -> None:
    # Table number 1 written as 0x81 0x00 (two bytes), with a valid checksum.
    body = b"\x81\x00" + bytes(16)
    c0 = sum(body) % 256
    c1 = sum((len(body) - i) * b for i, b in enumerate(body)) % 256
    rfc = base64.b32encode(body + bytes([c0, c1])).decode().rstrip("=")
    with pytest.raises(InvalidIdError, match="non-canonical"):
        decode_id(rfc.translate(_RFC_TO_CROCKFORD))


def test_long_input_is_truncated_in_message() -> None:
    with pytest.raises(InvalidIdError) as info:
        decode_id("x" * 10_000)
    assert len(info.value.message) < 200


@given(st.text(alphabet=ALPHABET, min_size=31, max_size=37))
def test_decoding_is_one_to_one(text: str) -> None:
    # Convex's proptest_id_decoding_one_to_one: whatever decodes must re-encode to itself,
    # and our direct canonicality checks reject exactly what re-encoding would.
    try:
        decoded = decode_id(text)
    except InvalidIdError:
        return
    assert encode_id(*decoded) == text


def _rust_decode(text: str) -> tuple[int, bytes] | None:
    """Convex's `DeveloperDocumentId::decode`, transcribed: lenient parse, then re-encode."""
    if not 31 <= len(text.encode()) <= 37 or not set(text) <= set(ALPHABET):
        return None
    rfc = text.translate(str.maketrans(ALPHABET, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
    data = base64.b32decode(rfc + "=" * (-len(rfc) % 8))[: len(text) * 5 // 8]
    table_number = pos = 0
    for i in range(6):
        if i >= 5 or pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        table_number = (table_number | (byte & 0x7F) << (i * 7)) & 0xFFFFFFFF
        if byte < 0x80:
            break
    if table_number == 0 or len(data) != pos + 18:
        return None
    internal_id = data[pos : pos + 16]
    if _reference_encode(table_number, internal_id) != text:  # checksum and canonical form
        return None
    return table_number, internal_id


@given(st.binary(min_size=17, max_size=21), st.integers(min_value=0, max_value=31), st.booleans())
def test_decode_matches_convex_on_checksummed_bytes(
    body: bytes, last_char: int, replace_last: bool
) -> None:
    # Arbitrary bytes with a valid footer, so decoding gets past the checksum and has to
    # judge the VInt and the canonical form; sometimes with nonzero padding bits.
    c0 = c1 = 0
    for byte in body:
        c0 = (c0 + byte) % 256
        c1 = (c1 + c0) % 256
    rfc = base64.b32encode(body + bytes([c0, c1])).decode().rstrip("=")
    text = rfc.translate(_RFC_TO_CROCKFORD)
    if replace_last:
        text = text[:-1] + ALPHABET[last_char]
    expected = _rust_decode(text)
    if expected is None:
        with pytest.raises(InvalidIdError):
            decode_id(text)
        assert table_number_of(text) is None
    else:
        assert decode_id(text) == expected


@given(st.text())
def test_table_number_of_never_raises(text: str) -> None:
    assert table_number_of(text) is None or len(text) >= 31


def test_table_number_of_non_string() -> None:
    assert table_number_of(b"074wwt1x3qmwz35bvscy44eq2yngrt8") is None  # type: ignore[arg-type]
    assert table_number_of(None) is None  # type: ignore[arg-type]
