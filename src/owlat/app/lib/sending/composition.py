"""The MIME message of an `EmailMessage`: the bytes the SMTP and SES providers and the
outbox send (Resend takes the same fields as JSON).

Structure: text/plain alone; multipart/alternative (text, then HTML) when there is HTML;
either one first in a multipart/mixed when there are attachments.

Headers: From, To, Reply-To, Subject, Date, Message-ID, MIME-Version, then the message's
own `headers`, for which `kind_headers` gives those of each send kind (reference §8.3):

    campaign       Precedence: bulk, Auto-Submitted: auto-generated,
                   List-Unsubscribe + List-Unsubscribe-Post (RFC 8058, required),
                   List-Id (list audiences), Feedback-ID
    automation     Auto-Submitted, the RFC 8058 pair when an unsubscribe URL is given,
                   Feedback-ID
    transactional  Auto-Submitted, Feedback-ID
    test           none (the subject gets "[TEST] ")
    system         Auto-Submitted (the instance's own mails: sign-up, reset, invitations)

The Message-ID is `<id@domain of From>`, where id is a hash of the idempotency key (so a
retry of one (recipient, message) carries the same Message-ID) or random without one.
Header injection is refused: a CR or LF in any header value (addresses and subject
included) raises `CompositionError`, as does a header the composition sets itself.
Header lines are folded at 998 octets, not 78: the email package would otherwise
RFC 2047-encode a long URL in List-Unsubscribe, which breaks it.

A campaign batch composes its messages with one `Composer`, which checks and writes each
distinct header line once (From, Reply-To, the kind headers, the Date of a second) and
only the per-recipient ones (To, Subject, Message-ID, List-Unsubscribe) and the bodies
per message; its bytes are `compose`'s.
The bytes are written here, not by the email package's generator, which took ~3 ms of CPU
per message (it parses every header it is given, then folds it again): a header whose
value is printable ASCII and fits on its line is written as it is; any other (non-ASCII
text, an overlong line) is folded and RFC 2047-encoded by the email package, as before.
Bodies are 7bit when ASCII with lines of at most 998 octets, else quoted-printable (UTF-8);
attachments base64, their names RFC 2231-encoded when not ASCII. Addresses are checked by
the email package's parser (`mailbox`), once per distinct value.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import email.policy
import enum
import functools
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Callable
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.utils import encode_rfc2231, format_datetime
from typing import TYPE_CHECKING

from owlat.app.lib.email_providers.types import Attachment, EmailMessage

if TYPE_CHECKING:
    from owlat.app.lib.sending.dkim import DkimSigner


class _HeaderClasses(HeaderRegistry):
    """The email package's registry, keeping the header class it makes for each name:
    `HeaderRegistry.__getitem__` builds a new class (`type(...)`) for every header it
    handles, which was half of the composition's time."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        if key not in self._classes:
            self._classes[key] = super().__getitem__(name)
        return self._classes[key]


POLICY = email.policy.SMTP.clone(max_line_length=998, header_factory=_HeaderClasses())
# Set by `compose` itself (or meaningless per message): never taken from `headers`.
RESERVED = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "dkim-signature",
        "return-path",
        "sender",
    }
)
_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 ftext
_PRINTABLE = re.compile(r"[\t -~]*\Z")  # a header value written as it is
# A bare dot-atom address (RFC 5322): built without the parser, which accepts it too.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)\Z")
_QUOTE = re.compile(r'[\\"]')
MAX_LINE = 998  # octets of a line (RFC 5322 §2.1.1)
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*\Z")
_ID_PART = re.compile(r"[A-Za-z0-9_-]+\Z")


class CompositionError(ValueError):
    """The message cannot be composed as given (the text says which field and why)."""


class SendKind(enum.StrEnum):
    CAMPAIGN = "campaign"
    TRANSACTIONAL = "transactional"
    AUTOMATION = "automation"
    TEST = "test"
    SYSTEM = "system"  # the instance's own mails (`lib/mailer.py`), no organization


def kind_headers(
    kind: SendKind,
    *,
    unsubscribe_url: str | None = None,
    list_id: str | None = None,
    feedback_id: str | None = None,
) -> dict[str, str]:
    """The headers a message of `kind` carries (table above). `unsubscribe_url` is the
    one-click endpoint (`POST /unsub/<token>`), required for campaigns and refused where
    the kind has no List-Unsubscribe; `list_id` is a `list_id_header` value."""
    takes_unsubscribe = kind in (SendKind.CAMPAIGN, SendKind.AUTOMATION)
    if kind is SendKind.CAMPAIGN and not unsubscribe_url:
        raise CompositionError("a campaign message needs an unsubscribe URL (RFC 8058)")
    if unsubscribe_url and not takes_unsubscribe:
        raise CompositionError(f"{kind} messages carry no List-Unsubscribe header")
    if list_id and kind is not SendKind.CAMPAIGN:
        raise CompositionError(f"{kind} messages carry no List-Id header")
    if feedback_id and kind is SendKind.TEST:
        raise CompositionError("test messages carry no Feedback-ID header")
    headers: dict[str, str] = {}
    if kind is SendKind.CAMPAIGN:
        headers["Precedence"] = "bulk"
    if kind is not SendKind.TEST:
        headers["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url:
        if not unsubscribe_url.startswith(("https://", "http://")):
            raise CompositionError(f"unsubscribe URL must be http(s): {unsubscribe_url!r}")
        headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if list_id:
        headers["List-Id"] = list_id
    if feedback_id:
        headers["Feedback-ID"] = feedback_id
    return headers


def tagged_test_subject(subject: str) -> str:
    """The subject of a test send."""
    return f"[TEST] {subject}"


def list_id_header(name: str, list_id: str, domain: str) -> str:
    """RFC 2919 List-Id of a mailing list: `"<name>" <list-<id>.<sending domain>>`."""
    if not _ID_PART.match(list_id):
        raise CompositionError(f"list id must be letters, digits, _ or -: {list_id!r}")
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <list-{list_id}.{domain.lower()}>'


def feedback_id(source_id: str, organization_id: str, kind: SendKind) -> str:
    """Google's Feedback-ID (`a:b:c:SenderId`): the campaign/template, the organization,
    the send kind, and "owlat"."""
    for part in (source_id, organization_id):
        if not _ID_PART.match(part):
            raise CompositionError(f"Feedback-ID part must be letters, digits, _ or -: {part!r}")
    return f"{source_id}:{organization_id}:{kind}:owlat"


def format_address(name: str, address: str) -> str:
    """`"Name" <address>` (quoted and encoded as needed), or the bare address."""
    _refuse_line_breaks("address", name + address)
    if not name:
        return address
    return str(Address(display_name=name, addr_spec=address))


@functools.lru_cache(maxsize=4096)
def mailbox(value: str, field: str) -> Address:
    """The one mailbox of an address header value, else `CompositionError` (a bare
    dot-atom address is taken without the parser)."""
    plain = _PLAIN_ADDRESS.match(value)
    if plain is not None:
        return Address(username=plain.group(1), domain=plain.group(2))
    _refuse_line_breaks(field, value)
    header = POLICY.header_factory(field, value)
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    if len(addresses) == 1 and not addresses[0].addr_spec.isascii():
        raise CompositionError(f"{field} address must be ASCII, got {value!r}")
    if header.defects or len(addresses) != 1 or not addresses[0].domain:
        raise CompositionError(f"{field} must be one email address, got {value!r}")
    return addresses[0]


def message_id_for(message: EmailMessage) -> str:
    """The Message-ID (without <>) of `message`: its own, else derived (module docstring)."""
    if message.message_id is not None:
        return message.message_id
    key = message.idempotency_key
    left = hashlib.sha256(key.encode()).hexdigest()[:32] if key else uuid.uuid4().hex
    return f"{left}@{mailbox(message.from_address, 'From').domain.lower()}"


def compose(message: EmailMessage, *, now: float | None = None) -> bytes:
    """The MIME bytes of `message` (CRLF line ends); `now` (epoch seconds) dates it."""
    return Composer().compose(message, now=now)


class Composer:
    """Composes the messages of one batch (a campaign's claim), which share their From,
    Reply-To, most of their headers and their Date's second: each distinct header line is
    checked and written once, then reused. Its bytes are `compose`'s (which is a
    `Composer` used once); only To, Subject, Message-ID, the per-recipient headers
    (List-Unsubscribe) and the bodies are written per message."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], str] = {}  # the headers `compose` sets
        self._custom: dict[tuple[str, str], str] = {}  # the message's own `headers`
        self._dates: dict[int, str] = {}

    def compose(self, message: EmailMessage, *, now: float | None = None) -> bytes:
        """The MIME bytes of `message`, as `compose` writes them."""
        head = self.head(message, now)
        body = _text_part(message.text, "plain")
        if message.html is not None:
            body = _multipart("alternative", [body, _text_part(message.html, "html")])
        if message.attachments:
            body = _multipart("mixed", [body, *map(_attachment_part, message.attachments)])
        return "".join(head).encode("ascii") + body

    def head(self, message: EmailMessage, now: float | None) -> list[str]:
        """The header lines of `message` (CRLF included), checked (module docstring)."""
        head = [
            self._standard("From", message.from_address, mailbox),
            self._standard("To", message.to, mailbox),
        ]
        if message.reply_to is not None:
            head.append(self._standard("Reply-To", message.reply_to, mailbox))
        head.append(self._standard("Subject", message.subject, _no_line_breaks))
        head.append(self._date(time.time() if now is None else now))
        head.append(self._standard("Message-ID", message_id_for(message), _no_line_breaks))
        for name, value in message.headers.items():
            line = self._custom.get((name, value))
            if line is None:
                _check_custom_header(name, value)
                line = self._custom[(name, value)] = _header(name, value)
            head.append(line)
        head.append("MIME-Version: 1.0\r\n")
        return head

    def _standard(self, name: str, value: str, check: Callable[[str, str], object]) -> str:
        """The line of a header `compose` sets, `check(value, name)`ed the first time."""
        line = self._lines.get((name, value))
        if line is None:
            check(value, name)
            shown = f"<{value}>" if name == "Message-ID" else value
            line = self._lines[(name, value)] = _header(name, shown)
        return line

    def _date(self, at: float) -> str:
        line = self._dates.get(int(at))
        if line is None:
            line = self._dates[int(at)] = _header("Date", format_datetime(_utc(at)))
        return line


def _header(name: str, value: str) -> str:
    """One header line (CRLF included): as it is when printable ASCII that fits, else
    folded and encoded by the email package."""
    if _PRINTABLE.match(value) and len(name) + 2 + len(value) <= MAX_LINE:
        return f"{name}: {value}\r\n"
    return str(POLICY.header_factory(name, value).fold(policy=POLICY))


def _text_part(text: str, subtype: str) -> bytes:
    """A text/<subtype> part (headers, blank line, body) in UTF-8: 7bit when it can be."""
    lines = text.encode("utf-8").splitlines()
    content_type = f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
    joined = b"\r\n".join(lines) + b"\r\n"
    if joined.isascii() and b"\x00" not in joined and max(map(len, lines), default=0) <= MAX_LINE:
        return f"{content_type}Content-Transfer-Encoding: 7bit\r\n\r\n".encode() + joined
    encoded = binascii.b2a_qp(joined, istext=True)
    return f"{content_type}Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode() + encoded


def _attachment_part(attachment: Attachment) -> bytes:
    _refuse_line_breaks("attachment filename", attachment.filename)
    if not _CONTENT_TYPE.match(attachment.content_type):
        raise CompositionError(f"invalid attachment type {attachment.content_type!r}")
    name = attachment.filename
    if name.isascii() and _PRINTABLE.match(name):
        disposition = 'filename="{}"'.format(_QUOTE.sub(lambda m: "\\" + m.group(), name))
    else:
        disposition = "filename*=" + encode_rfc2231(name, "utf-8")
    encoded = base64.encodebytes(attachment.content).replace(b"\n", b"\r\n")
    head = (
        f"Content-Type: {attachment.content_type}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; {disposition}\r\n\r\n"
    )
    return head.encode("ascii") + encoded


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    """A multipart/<subtype> entity of `parts` (each headers, blank line, body), under a
    random boundary that none of them contains."""
    boundary = "=_" + secrets.token_hex(16)
    while any(boundary.encode() in part for part in parts):
        boundary = "=_" + secrets.token_hex(16)
    delimiter = b"--" + boundary.encode()
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts)
    return head + body + delimiter + b"--\r\n"


def prepare(
    message: EmailMessage,
    *,
    dkim: DkimSigner | None = None,
    now: float | None = None,
    composer: Composer | None = None,
) -> EmailMessage:
    """`message` with its Message-ID and MIME bytes (`raw`) set, DKIM-signed by `dkim`;
    composed by `composer` (a batch's) when given."""
    message_id = message_id_for(message)
    message = dataclasses.replace(message, message_id=message_id)
    raw = (composer or Composer()).compose(message, now=now)
    if dkim is not None:
        raw = dkim.sign(raw, now=now)
    return dataclasses.replace(message, raw=raw)


def wire(message: EmailMessage, *, dkim: DkimSigner | None = None) -> tuple[str, bytes]:
    """(Message-ID, MIME bytes) of `message`: the prepared ones, else prepared now."""
    if message.raw is None:
        message = prepare(message, dkim=dkim)
    if message.message_id is None or message.raw is None:
        raise ValueError("raw is set without message_id: use composition.prepare")
    return message.message_id, message.raw


def envelope(message: EmailMessage) -> tuple[str, str]:
    """(sender, recipient) addresses of the SMTP envelope: From's and To's addr-specs.
    A prepared message was checked when composed: its addresses are only split here."""
    if message.raw is not None:
        return _addr_spec(message.from_address), _addr_spec(message.to)
    return mailbox(message.from_address, "From").addr_spec, mailbox(message.to, "To").addr_spec


def check_headers(message: EmailMessage) -> None:
    """Refuse what `compose` would refuse in the headers (for providers that take fields)."""
    Composer().head(message, 0.0)


def _addr_spec(checked: str) -> str:
    """The address of a checked single-mailbox value: `Name <addr>` or `addr`."""
    return checked[checked.rindex("<") + 1 : -1] if checked.endswith(">") else checked


def _utc(epoch_seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)


def _check_custom_header(name: str, value: str) -> None:
    if not _FIELD_NAME.match(name):
        raise CompositionError(f"invalid header name {name!r}")
    if name.lower() in RESERVED:
        raise CompositionError(f"header {name} is set by the composition, not by headers")
    _refuse_line_breaks(name, value)


def _no_line_breaks(value: str, field: str) -> None:
    _refuse_line_breaks(field, value)


def _refuse_line_breaks(field: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise CompositionError(f"{field} contains a line break (CR or LF): refused")
