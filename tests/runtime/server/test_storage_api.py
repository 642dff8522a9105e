"""Parsing the Range and Digest headers of file downloads and uploads."""

from __future__ import annotations

import base64
import hashlib

import pytest

from owlat.runtime.server.storage_api import RangeNotSatisfiable, parse_digest, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 1)),
        ("bytes=2-5", (2, 6)),
        ("bytes=2-", (2, 10)),
        ("bytes=5-100", (5, 10)),
        ("bytes=-3", (7, 10)),
        ("bytes=-30", (0, 10)),
        ("BYTES=1-2", (1, 3)),
        ("items=0-1", None),  # another unit: ignored
        ("bytes=5-2", None),  # malformed: ignored
        ("bytes=a-b", None),
        ("bytes=-", None),
    ],
)
def test_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=10-", 10),
        ("bytes=10-20", 10),
        ("bytes=-0", 10),
        ("bytes=0-1,3-4", 10),
        ("bytes=-5", 0),
    ],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_digests() -> None:
    digest = hashlib.sha256(b"x").digest()
    encoded = base64.b64encode(digest).decode()
    assert parse_digest(None) is None
    assert parse_digest(f"sha-256={encoded}") == digest
    assert parse_digest(f"md5=abc, SHA-256={encoded}") == digest
    assert parse_digest("md5=abc") is None
    with pytest.raises(ValueError, match="base64 of a 32-byte SHA-256"):
        parse_digest("sha-256=abc")
