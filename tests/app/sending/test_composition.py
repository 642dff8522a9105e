"""Composition: the MIME bytes parsed back with `email`, every header and part checked;
the headers of each send kind (RFC 8058 exactly where required); injection refused."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import email.utils
import re
from email.message import EmailMessage as Parsed
from email.message import MIMEPart
from pathlib import Path

import pytest

from owlat.app.lib.email_providers.outbox import OutboxProvider
from owlat.app.lib.email_providers.types import Attachment, EmailMessage
from owlat.app.lib.sending.composition import (
    Composer,
    CompositionError,
    SendKind,
    compose,
    feedback_id,
    format_address,
    kind_headers,
    list_id_header,
    prepare,
    tagged_test_subject,
)

NOW = 1_700_000_000.0
UNSUB = "https://site.test/unsub/c1%3A1700000000000%3Asig"


def parse(raw: bytes) -> Parsed:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, Parsed)
    return parsed


def lines(part: MIMEPart) -> list[str]:
    content = part.get_content()
    assert isinstance(content, str)
    return content.splitlines()


def campaign(**fields: object) -> EmailMessage:
    values: dict[str, object] = {
        "to": "Ada Lovelace <ada@example.org>",
        "subject": "Spring news — €10 off",
        "text": "Hello Ada,\nour news.",
        "html": "<p>Hello Ada,</p><p>our news.</p>",
        "from_address": format_address("Owlat, Inc.", "news@sender.test"),
        "reply_to": "help@sender.test",
        "idempotency_key": "send:c1:ada",
        "headers": kind_headers(
            SendKind.CAMPAIGN,
            unsubscribe_url=UNSUB,
            list_id=list_id_header('Spring "News"', "list_42", "Sender.test"),
            feedback_id=feedback_id("c1", "org_1", SendKind.CAMPAIGN),
        ),
        **fields,
    }
    return EmailMessage(**values)  # type: ignore[arg-type]


def test_a_campaign_message_has_every_header_and_part() -> None:
    raw = compose(campaign(), now=NOW)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    parsed = parse(raw)
    assert dict(parsed.items()) | {"Content-Type": ""} == {
        "From": '"Owlat, Inc." <news@sender.test>',
        "To": "Ada Lovelace <ada@example.org>",
        "Reply-To": "help@sender.test",
        "Subject": "Spring news — €10 off",
        "Date": "Tue, 14 Nov 2023 22:13:20 +0000",
        "Message-ID": parsed["Message-ID"],
        "Precedence": "bulk",
        "Auto-Submitted": "auto-generated",
        "List-Unsubscribe": f"<{UNSUB}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": '"Spring \\"News\\"" <list-list_42.sender.test>',
        "Feedback-ID": "c1:org_1:campaign:owlat",
        "MIME-Version": "1.0",
        "Content-Type": "",
    }
    assert parsed["Message-ID"].endswith("@sender.test>")
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.iter_parts()
    assert (text.get_content_type(), lines(text)) == ("text/plain", ["Hello Ada,", "our news."])
    assert (html.get_content_type(), lines(html)) == ("text/html", [campaign().html])
    assert "MIME-Version" not in text and "MIME-Version" not in html


RECIPIENTS = [
    # (To, Subject, text, html): ASCII 7bit, non-ASCII names and subjects (RFC 2047),
    # quoted-printable bodies (non-ASCII, overlong lines), a folded subject
    ("ada@example.org", "News for Ada", "Hello Ada", "<p>Hello Ada</p>"),
    (format_address("Jörg Müller", "jorg@example.org"), "News für Jörg ✓", "Grüße", "<p>é</p>"),
    (format_address('Quote "me"', "q@example.org"), "long " + "word " * 300, "x" * 2000, "<p/>"),
    ("bob@example.org", "News for Bob", "Hello Bob", "<p>" + "y" * 1500 + "</p>"),
]


def recipient_message(index: int) -> EmailMessage:
    to, subject, text, html = RECIPIENTS[index]
    unsubscribe = kind_headers(
        SendKind.CAMPAIGN,
        unsubscribe_url=f"https://site.test/unsub/c{index}%3A1700000000000%3Asig",
        list_id=list_id_header('Spring "News"', "list_42", "Sender.test"),
        feedback_id=feedback_id("c1", "org_1", SendKind.CAMPAIGN),
    )
    return campaign(
        to=to, subject=subject, text=text, html=html, headers=unsubscribe,
        idempotency_key=f"send:c1:{index}",
    )  # fmt: skip


def same_boundary(raw: bytes) -> bytes:
    return re.sub(rb"=_[0-9a-f]{32}", b"=_boundary", raw)


def test_a_batch_composer_writes_each_message_as_compose_does() -> None:
    """One `Composer` for a batch reuses the lines its messages share: every message's
    bytes are still those of `compose` alone (per-recipient headers and bodies included),
    in every encoding, and each message carries its own recipient's values."""
    composer = Composer()
    for _ in range(2):  # the second round reuses every line
        for index, (to, subject, text, html) in enumerate(RECIPIENTS):
            message = recipient_message(index)
            raw = composer.compose(message, now=NOW + index)
            assert same_boundary(raw) == same_boundary(compose(message, now=NOW + index))
            parsed = parse(raw)
            assert (parsed["To"], parsed["Subject"]) == (to, subject)
            assert (
                parsed["List-Unsubscribe"]
                == f"<https://site.test/unsub/c{index}%3A1700000000000%3Asig>"
            )
            assert parsed["Message-ID"] == f"<{prepare(message).message_id}>"
            assert parsed["Date"] == email.utils.format_datetime(
                datetime.datetime.fromtimestamp(NOW + index, datetime.UTC)
            )
            plain, rich = parsed.iter_parts()
            assert (lines(plain), lines(rich)) == (text.splitlines(), html.splitlines())


def test_a_batch_composer_still_refuses_what_compose_refuses() -> None:
    composer = Composer()
    composer.compose(campaign(to="ada@example.org"))
    with pytest.raises(CompositionError, match="header To is set by the composition"):
        composer.compose(campaign(headers={"To": "ada@example.org"}))
    with pytest.raises(CompositionError, match="To contains a line break"):
        composer.compose(campaign(to="ada@example.org\r\nBcc: v@example.org"))


def test_attachments_make_it_multipart_mixed() -> None:
    files = (
        Attachment("report.pdf", b"%PDF-1.7\x00\xff", "application/pdf"),
        Attachment("données.csv", b"a;b\n1;2\n", "text/csv"),
    )
    parsed = parse(compose(campaign(attachments=files), now=NOW))
    assert parsed.get_content_type() == "multipart/mixed"
    body, *attached = parsed.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    assert [(a.get_filename(), a.get_content_type(), a.get_content()) for a in attached] == [
        ("report.pdf", "application/pdf", b"%PDF-1.7\x00\xff"),
        ("données.csv", "text/csv", "a;b\n1;2\n"),
    ]


def test_a_text_only_message_is_a_single_part() -> None:
    message = EmailMessage(to="a@example.org", subject="Hi", text="Just text")
    parsed = parse(compose(message))
    assert parsed.get_content_type() == "text/plain"
    assert lines(parsed) == ["Just text"]
    assert parsed["From"] == "Owlat <no-reply@owlat.local>"


def test_the_message_id_follows_the_idempotency_key() -> None:
    first, again = prepare(campaign()), prepare(campaign())
    other = prepare(campaign(idempotency_key="send:c1:bob"))
    unkeyed = prepare(campaign(idempotency_key=None))
    assert first.message_id == again.message_id != other.message_id
    assert first.message_id is not None and first.message_id.endswith("@sender.test")
    assert unkeyed.message_id != prepare(campaign(idempotency_key=None)).message_id
    assert parse(first.raw or b"")["Message-ID"] == f"<{first.message_id}>"


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        (
            SendKind.CAMPAIGN,
            {"unsubscribe_url": UNSUB},
            {
                "Precedence": "bulk",
                "Auto-Submitted": "auto-generated",
                "List-Unsubscribe": f"<{UNSUB}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        ),
        (
            SendKind.AUTOMATION,
            {"unsubscribe_url": UNSUB},
            {
                "Auto-Submitted": "auto-generated",
                "List-Unsubscribe": f"<{UNSUB}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        ),
        (SendKind.AUTOMATION, {}, {"Auto-Submitted": "auto-generated"}),
        (
            SendKind.TRANSACTIONAL,
            {"feedback_id": "t1:o1:transactional:owlat"},
            {"Auto-Submitted": "auto-generated", "Feedback-ID": "t1:o1:transactional:owlat"},
        ),
        (SendKind.TEST, {}, {}),
    ],
)
def test_headers_per_send_kind(
    kind: SendKind, options: dict[str, str], expected: dict[str, str]
) -> None:
    assert kind_headers(kind, **options) == expected


@pytest.mark.parametrize(
    ("kind", "options", "error"),
    [
        (SendKind.CAMPAIGN, {}, "a campaign message needs an unsubscribe URL"),
        (SendKind.TRANSACTIONAL, {"unsubscribe_url": UNSUB}, "carry no List-Unsubscribe"),
        (SendKind.TEST, {"unsubscribe_url": UNSUB}, "carry no List-Unsubscribe"),
        (SendKind.AUTOMATION, {"list_id": '"L" <list-a.b.c>'}, "carry no List-Id"),
        (SendKind.TEST, {"feedback_id": "a:b:test:owlat"}, "carry no Feedback-ID"),
        (SendKind.CAMPAIGN, {"unsubscribe_url": "javascript:alert(1)"}, "must be http"),
    ],
)
def test_headers_a_kind_does_not_take_are_refused(
    kind: SendKind, options: dict[str, str], error: str
) -> None:
    with pytest.raises(CompositionError, match=error):
        kind_headers(kind, **options)


@pytest.mark.parametrize(
    ("text", "html", "transfer"),
    [
        ("Plain ASCII\nTwo lines", "<p>ASCII</p>", ("7bit", "7bit")),
        ("Grüße, Jörg €\r\nmixed\rbreaks\n", "<p>Grüße</p>", ("quoted-printable",) * 2),
        ("x" * 2000, "<p>" + "y" * 5000 + "</p>", ("quoted-printable",) * 2),
        ("nul\x00byte  \ntrailing spaces   ", "=_ and =3D and --", ("quoted-printable", "7bit")),
    ],
)
def test_bodies_round_trip_in_the_transfer_encoding_they_need(
    text: str, html: str, transfer: tuple[str, str]
) -> None:
    parsed = parse(compose(campaign(text=text, html=html), now=NOW))
    plain, rich = parsed.iter_parts()
    assert (plain["Content-Transfer-Encoding"], rich["Content-Transfer-Encoding"]) == transfer
    assert lines(plain) == text.encode().decode().splitlines()
    assert lines(rich) == html.splitlines()


@pytest.mark.parametrize(
    ("subject", "display"),
    [
        ("Ünïcödé ✓ subject", "Jörg Müller"),
        ("long " + "word " * 300, 'Quote "me", please'),
        ("tab\there", "Ada"),
    ],
)
def test_headers_that_need_encoding_or_folding_round_trip(subject: str, display: str) -> None:
    raw = compose(campaign(subject=subject, to=format_address(display, "a@example.org")))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = parse(raw)
    assert parsed["Subject"] == subject
    assert parsed["To"].addresses[0].display_name == display


def test_attachment_names_round_trip() -> None:
    names = ['a "quoted" \\ name.pdf', "naïve €.pdf", "plain.txt"]
    files = tuple(Attachment(name, b"\x00\x01" * 100, "application/pdf") for name in names)
    parsed = parse(compose(campaign(attachments=files), now=NOW))
    _, *attached = parsed.iter_parts()
    assert [(a.get_filename(), a.get_content()) for a in attached] == [
        (name, b"\x00\x01" * 100) for name in names
    ]


def test_a_test_send_is_tagged() -> None:
    assert tagged_test_subject("Spring news") == "[TEST] Spring news"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.org"}, "Subject contains a line break"),
        ({"subject": "Hi\nthere"}, "Subject contains a line break"),
        ({"to": "a@example.org\r\nBcc: victim@example.org"}, "To contains a line break"),
        ({"from_address": "x@sender.test\nBcc: v@example.org"}, "From contains a line break"),
        ({"reply_to": "x@sender.test\rBcc: v@example.org"}, "Reply-To contains a line break"),
        ({"headers": {"X-Tag": "a\r\nBcc: v@example.org"}}, "X-Tag contains a line break"),
        ({"headers": {"X Tag": "a"}}, "invalid header name"),
        ({"headers": {"bcc": "v@example.org"}}, "header bcc is set by the composition"),
        ({"to": "a@example.org, b@example.org"}, "To must be one email address"),
        ({"to": "not an address"}, "To must be one email address"),
        ({"to": "josé@example.org"}, "To address must be ASCII"),
        ({"attachments": (Attachment("a\r\n.txt", b""),)}, "attachment filename contains"),
        ({"attachments": (Attachment("a.txt", b"", "text"),)}, "invalid attachment type"),
    ],
)
def test_bad_input_is_refused(fields: dict[str, object], error: str) -> None:
    with pytest.raises(CompositionError, match=error):
        compose(campaign(**fields))


def test_list_id_and_feedback_id_parts_are_checked() -> None:
    with pytest.raises(CompositionError, match="list id"):
        list_id_header("L", "a.b", "sender.test")
    with pytest.raises(CompositionError, match="Feedback-ID part"):
        feedback_id("c:1", "o", SendKind.CAMPAIGN)


async def test_the_outbox_writes_the_composed_bytes_once_per_key(tmp_path: Path) -> None:
    outbox = OutboxProvider(tmp_path)
    prepared = prepare(campaign(), now=NOW)
    first = await outbox.send(prepared)
    again = await outbox.send(campaign())
    plain = await outbox.send(EmailMessage(to="b@example.org", subject="Hi", text="Hello"))
    assert first == again
    files = [(path.stem, path.read_bytes()) for path in sorted(tmp_path.glob("*.eml"))]  # noqa: ASYNC240
    assert [stem for stem, _ in files] == [first.message_id, plain.message_id]
    assert files[0][1] == prepared.raw
    assert parse(files[1][1])["Subject"] == "Hi"


async def test_two_deliveries_of_one_key_at_once_write_one_file(tmp_path: Path) -> None:
    """A send recovered while its first delivery still runs: both ask the outbox at the
    same moment (threads), one file is written and both get its name."""
    outbox = OutboxProvider(tmp_path)
    for n in range(100):
        message = EmailMessage(
            to="b@example.org", subject="Hi", text="Hello", idempotency_key=f"send:{n}"
        )
        first, second = await asyncio.gather(outbox.send(message), outbox.send(message))
        assert first == second
    assert len(list(tmp_path.glob("*.eml"))) == 100  # noqa: ASYNC240
    # a delivery that named the file and died before writing it: the next one writes it
    (tmp_path / ".key-send_dead").write_text("00000000000000000001-send_dead")
    message = EmailMessage(to="b@example.org", subject="Hi", text="Hi", idempotency_key="send:dead")
    assert (await outbox.send(message)).message_id == "00000000000000000001-send_dead"
    assert (tmp_path / "00000000000000000001-send_dead.eml").exists()
