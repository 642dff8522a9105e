"""The `Convex-Client` request header: `{client}-{semver}`, e.g. `npm-1.48.0`, `python-0.8.1`.

Parsed as Convex does: the version is the longest suffix (after a `-`) that parses as
semver, the client name is what precedes it (`some-custom-thing-1.2.3-4.5.6-alpha.7` is
client `some-custom-thing`, version `1.2.3-4.5.6-alpha.7`). Rules (reference §1):

- no header: an unknown client;
- a value with no `-`, or an unknown client without a parseable version: 400
  `InvalidClientVersion`;
- a known client (npm, python, rust, ...) whose version does not parse, or is at or below
  the version Convex no longer supports: 400 `ClientVersionUnsupported`;
- a request without `format` gets clean JSON, except from npm clients before 1.4.1 and
  Python clients before 0.5.0, which expect the encoded format.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

from owlat.runtime.server.outcome import RequestError

_PRERELEASE_ID: Final = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER: Final = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-{_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*)?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)

# Client family → (newest unsupported version, first version that sends `format` itself).
_FAMILIES: Final[dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]]] = {
    "npm": ((0, 19, 1), (1, 4, 1)),
    "python": ((0, 0, 2), (0, 5, 0)),
    "rust": ((0, 0, 1), (0, 0, 0)),
}
_FAMILY_OF_CLIENT: Final = {
    "npm": "npm",
    "npm-cli": "npm",
    "actions": "npm",
    "python": "python",
    "python-convex": "python",
    "rust": "rust",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ClientVersion:
    """The client that sent a request, as named by its `Convex-Client` header."""

    client: str
    version: tuple[int, int, int]

    @property
    def wants_encoded_by_default(self) -> bool:
        """Old official clients read values in the encoded format without asking for it."""
        family = _FAMILY_OF_CLIENT.get(self.client)
        return family is not None and self.version < _FAMILIES[family][1]


UNKNOWN_CLIENT: Final = ClientVersion("unknown", (0, 0, 0))


def parse_client_version(header: str | None) -> ClientVersion:
    """The `ClientVersion` of a `Convex-Client` header; raises `RequestError`."""
    if header is None:
        return UNKNOWN_CLIENT
    parts = header.strip().split("-")
    for n in range(1, len(parts)):
        match = _SEMVER.fullmatch("-".join(parts[n:]))
        if match:
            client = "-".join(parts[:n]).lower()
            major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
            version = ClientVersion(client, (major, minor, patch))
            family = _FAMILY_OF_CLIENT.get(client)
            if family is not None and version.version <= _FAMILIES[family][0]:
                raise RequestError(
                    "ClientVersionUnsupported",
                    f"Convex-Client '{header}': the {client} client at version "
                    f"{'.'.join(parts[n:])} is no longer supported. Please upgrade it.",
                )
            return version
    if len(parts) > 1 and any(
        header.strip().lower().startswith(client + "-") for client in _FAMILY_OF_CLIENT
    ):
        raise RequestError(
            "ClientVersionUnsupported",
            f"The Convex client version in '{header}' cannot be read, so it is treated as "
            "unsupported. Please upgrade the client.",
        )
    raise RequestError(
        "InvalidClientVersion",
        f"Failed to parse client version string: '{header}'. Expected format is "
        "{client_name}-{semver}, e.g. my-esolang-client-0.0.1",
    )
