"""`Convex-Client` header parsing (the rules Convex's `ClientVersion` applies)."""

from __future__ import annotations

import pytest

from owlat.runtime.server._client_version import UNKNOWN_CLIENT, parse_client_version
from owlat.runtime.server.outcome import RequestError


@pytest.mark.parametrize(
    ("header", "client", "version", "encoded_by_default"),
    [
        ("npm-1.48.0", "npm", (1, 48, 0), False),
        ("npm-1.4.0", "npm", (1, 4, 0), True),
        ("npm-cli-1.3.0", "npm-cli", (1, 3, 0), True),
        ("python-0.8.1", "python", (0, 8, 1), False),
        ("python-convex-0.4.0", "python-convex", (0, 4, 0), True),
        ("rust-0.10.4", "rust", (0, 10, 4), False),
        ("some-custom-thing-1.2.3-4.5.6-alpha.7", "some-custom-thing", (1, 2, 3), False),
        ("NPM-2.0.0+build.5", "npm", (2, 0, 0), False),
    ],
)
def test_known_and_custom_clients(
    header: str, client: str, version: tuple[int, int, int], encoded_by_default: bool
) -> None:
    parsed = parse_client_version(header)
    assert (parsed.client, parsed.version) == (client, version)
    assert parsed.wants_encoded_by_default is encoded_by_default


def test_no_header_is_an_unknown_client() -> None:
    assert parse_client_version(None) == UNKNOWN_CLIENT
    assert not UNKNOWN_CLIENT.wants_encoded_by_default


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("npm", "InvalidClientVersion"),
        ("", "InvalidClientVersion"),
        ("custom-1.2", "InvalidClientVersion"),
        ("npm-1.2.3.4", "ClientVersionUnsupported"),
        ("npm-0.19.1", "ClientVersionUnsupported"),
        ("actions-0.1.0", "ClientVersionUnsupported"),
        ("python-0.0.2", "ClientVersionUnsupported"),
        ("rust-0.0.1", "ClientVersionUnsupported"),
    ],
)
def test_refused_headers(header: str, code: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_client_version(header)
    assert raised.value.code == code and raised.value.status == 400
