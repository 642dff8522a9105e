"""A batch's messages composed (personalized, MIME) and DKIM-signed in the signing
processes (`signing.py`): the one path of a campaign batch (`campaigns/composing.py`) and
of a transactional claim (`sends.prepare_all`), so that the delivery's process only moves
bytes and records outcomes.

`compose_all(compose, items)` hands the items to the signing processes in a few chunks
(one per process: one IPC round trip each). Each chunk is composed with one `Composer`
(the header lines its messages share are written once) by `compose(item, composer)`, a
picklable function (a module-level one, or a `functools.partial` of one whose arguments
are what the batch's items share: they travel once per chunk); each message is then
signed with its item's key, if any. What a signing process needs besides the chunk
travels with it: the site's URLs and the instance secret that unsubscribe tokens, footer
and click links are signed with (`_Site`), and each key's PEM (unsealed in the server
process, which holds the sealed secrets). The messages are byte for byte what composing
here makes, except for the multipart boundaries, which are random: a batch smaller than
`signing.POOL_MIN`, or one whose signing process died, is composed here
(`signing.in_pool`), so no message is lost or sent twice. Without `fields` (no provider
of the route takes the bodies as fields, `routes.takes_fields`), a message comes back
with its MIME bytes and envelope only, not its bodies and attachments a second time.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from owlat.app.lib import instance
from owlat.app.lib.email_providers.types import EmailMessage
from owlat.app.lib.sending import signing
from owlat.app.lib.sending.composition import Composer, CompositionError
from owlat.app.lib.sending.dkim import DkimSigner

Composed = EmailMessage | CompositionError  # an item's message, or why it has none
Key = tuple[str, str, str]  # a DKIM key: (domain, selector, private key PEM)
Item = tuple[Key | None, Mapping[str, Any]]  # what to compose, and the key to sign it with
ComposeOne = Callable[[Mapping[str, Any], Composer], EmailMessage]


@dataclasses.dataclass(frozen=True, slots=True)
class _Site:
    """What composing reads of the instance (`instance.current()`), for a signing process."""

    base_url: str
    app_url: str
    secret: str

    def installed(self) -> None:
        """In a signing process: make this the process's instance (once per change)."""
        if _installed.get("site") != self:
            instance.configure(Path("."), self.base_url, app_url=self.app_url, secret=self.secret)
            _installed["site"] = self


_installed: dict[str, _Site] = {}


def key_of(signer: DkimSigner | None) -> Key | None:
    """What a signing process signs with for `signer` (None: unsigned). Items of one key
    share its PEM string, which pickling sends once per chunk."""
    return None if signer is None else (signer.domain, signer.selector, signer.private_key_pem)


async def compose_all(
    compose: ComposeOne, items: Sequence[Item], *, fields: bool = True
) -> list[Composed]:
    """Each of `items` composed by `compose` and signed with its key, in order (module
    docstring); a `CompositionError` that `compose` raises is that item's result."""
    current = instance.current()
    site = _Site(current.base_url, current.app_url, current.secret.decode())
    here = functools.partial(composed, compose, time.time(), fields=fields)
    return await signing.in_pool(functools.partial(_composed_there, site, here), here, items)


def _composed_there(
    site: _Site, here: Callable[[Sequence[Item]], list[Composed]], items: Sequence[Item]
) -> list[Composed]:
    """In a signing process: `here` (`composed`) under the server's instance settings."""
    site.installed()
    return here(items)


def composed(
    compose: ComposeOne, now: float, items: Sequence[Item], *, fields: bool = True
) -> list[Composed]:
    """`items` composed with one `Composer` and signed at `now` (epoch seconds), here;
    without `fields`, the messages keep their MIME bytes, not their bodies."""
    composer = Composer()  # the chunk's shared header lines, written once
    done: list[Composed] = []
    for key, item in items:
        try:
            message = compose(item, composer)
        except CompositionError as error:
            done.append(error)
            continue
        if key is not None:
            raw = message.raw or b""
            field = signing.signer(*key).signature(raw, now=now)
            message = dataclasses.replace(message, raw=field + raw)
        if not fields:
            message = dataclasses.replace(message, text="", html=None, attachments=())
        done.append(message)
    return done
