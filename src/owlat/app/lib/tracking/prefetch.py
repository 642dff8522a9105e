"""Opens that a mailbox provider's proxy made, not (necessarily) the reader.

Some providers fetch every image of a message themselves, so an "open" says little:

- Apple Mail Privacy Protection (iOS 15+, macOS 12+) downloads remote images of every
  message in the background, whether or not it is read, through Apple's proxies. Its
  requests carry the bare user agent `Mozilla/5.0` (nothing after it) and come from Apple's
  own network, 17.0.0.0/8 (AS714); either one flags the open.
- Gmail's image proxy (`GoogleImageProxy` in the user agent, "via ggpht.com") fetches an
  image when the reader opens the message, then caches it: the first open is the reader's,
  later ones are not seen; its addresses are Google's 66.102.0.0/20, 66.249.64.0/19,
  64.233.160.0/19, 72.14.192.0/18 and 74.125.0.0/16 (either flags it).
- Yahoo's proxy (`YahooMailProxy`) works like Gmail's.

`prefetcher(user_agent, address)` names the proxy or returns None. Such opens are recorded
and flagged (`proxyOpenCount`; the contact's `hasOpened` and the `email_opened` activity
wait for an unflagged open), so statistics show opens with and without them.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final


def _ranges(*networks: str) -> tuple[tuple[int, int], ...]:
    """(address, mask) of IPv4 networks, as integers: a membership test is one `&`."""
    parsed = [ipaddress.IPv4Network(n) for n in networks]
    return tuple((int(n.network_address), int(n.netmask)) for n in parsed)


_APPLE: Final = _ranges("17.0.0.0/8")
_GOOGLE: Final = _ranges(
    "66.102.0.0/20", "66.249.64.0/19", "64.233.160.0/19", "72.14.192.0/18", "74.125.0.0/16"
)
_AGENTS: Final = (("googleimageproxy", "gmail"), ("yahoomailproxy", "yahoo"))


def prefetcher(user_agent: str, address: str) -> str | None:
    """ "apple", "gmail" or "yahoo" when the request comes from that provider's image proxy
    (module docstring), else None."""
    agent = user_agent.strip().lower()
    for marker, name in _AGENTS:
        if marker in agent:
            return name
    if agent == "mozilla/5.0":
        return "apple"
    try:  # the strict dotted quad `ipaddress` accepts; any other text is in no range
        ip = int.from_bytes(socket.inet_pton(socket.AF_INET, address))
    except (OSError, ValueError):
        return None
    if any(ip & mask == network for network, mask in _APPLE):
        return "apple"
    if any(ip & mask == network for network, mask in _GOOGLE):
        return "gmail"
    return None
