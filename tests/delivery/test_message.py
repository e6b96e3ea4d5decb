"""The edition template: serialised once, filled per reader, valid on the wire."""

from __future__ import annotations

import email
import email.policy
import quopri
import random
import re
from email.message import EmailMessage

import pytest

import config.defaults
from mailer.delivery.message import (
    DATE,
    MESSAGE_ID,
    PREFERENCES,
    SLOT_WIDTH,
    TO,
    UNSUBSCRIBE,
    MailSettings,
    Template,
    choose_encoding,
    digest_template,
    encode,
    header,
    split_slots,
)
from tests.delivery.factory import HTML, TEXT

PLACEHOLDERS = ("x0UNSUBSCRIBETOKEN0x", "x0PREFERENCESTOKEN0x")
SETTINGS = MailSettings(
    from_header="Notizie Tëch <newsletter@example.it>", envelope_from="bounces@example.it",
    base_url="https://news.example.it", list_id="Notizie Tech <digest.example.it>",
    unsubscribe_mailto=None, domain="example.it",
)


def values(unsub: str = "MTI.unsubscribe-token", prefs: str = "MTI.preferences-token") -> list[bytes]:
    slots = [b""] * 5
    slots[UNSUBSCRIBE], slots[PREFERENCES] = unsub.encode(), prefs.encode()
    slots[TO], slots[DATE] = b"reader@example.org", b"Wed, 25 Nov 2026 08:00:00 +0000"
    slots[MESSAGE_ID] = b"<digest-1.2.3@example.it>"
    return slots


def build(eightbit: bool, text: str = TEXT, html: str = HTML, subject: str = "Le notizie – più belle",
          settings: MailSettings = SETTINGS) -> Template:
    return digest_template(settings, subject=subject, text=text, html=html, language="it",
                           archive_url="https://news.example.it/archive/1", eightbit=eightbit,
                           placeholders=PLACEHOLDERS)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def expected(content: str, unsub: str = "MTI.unsubscribe-token", prefs: str = "MTI.preferences-token") -> str:
    return content.replace(PLACEHOLDERS[0], unsub).replace(PLACEHOLDERS[1], prefs)


@pytest.mark.parametrize("eightbit", [True, False])
def test_the_mail_is_valid_crlf_mime_with_every_header(eightbit: bool) -> None:
    raw = build(eightbit).render(values(), wire=False)
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = parse(raw)
    assert message["From"] == "Notizie Tëch <newsletter@example.it>"
    assert b"From: Notizie =?utf-8?q?T=C3=ABch?= <newsletter@example.it>" in raw  # RFC 2047
    assert message["Subject"] == "Le notizie – più belle" and b"=?utf-8?" in raw.split(b"Subject:")[1][:80]
    assert message["To"] == "reader@example.org"
    assert message["Date"] == "Wed, 25 Nov 2026 08:00:00 +0000"
    assert message["Message-ID"] == "<digest-1.2.3@example.it>"
    assert message["MIME-Version"] == "1.0"
    assert message["List-Id"] == "Notizie Tech <digest.example.it>"
    assert message["List-Unsubscribe"] == "<https://news.example.it/unsubscribe/MTI.unsubscribe-token>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    plain, rich = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and rich is not None
    assert plain.get_content_charset() == rich.get_content_charset() == "utf-8"
    assert body(message, "plain") == expected(TEXT)
    assert body(message, "html") == expected(HTML)
    assert not message.defects and not plain.defects and not rich.defects


def test_8bit_only_when_the_server_offers_8bitmime() -> None:
    with_8bit, without = build(True), build(False)
    raw = with_8bit.render(values())
    assert with_8bit.eightbit and b"Content-Transfer-Encoding: 8bit" in raw
    assert "perché".encode() in raw
    seven = without.render(values())
    assert not without.eightbit and seven.isascii()
    assert b"Content-Transfer-Encoding: quoted-printable" in seven
    body_lines = seven.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76


def test_an_ascii_edition_goes_as_7bit_to_any_server() -> None:
    template = build(False, text=f"Hello\nhttp://x/unsubscribe/{PLACEHOLDERS[0]}\n", html="<p>Hi</p>\n")
    raw = template.render(values())
    assert not template.eightbit and raw.count(b"Content-Transfer-Encoding: 7bit") == 2


def test_a_line_too_long_for_smtp_is_quoted_printable_even_with_8bitmime() -> None:
    html = "<p>" + "è lungo " * 200 + f"<a href=\"/u/{PLACEHOLDERS[0]}\">x</a></p>\n"
    raw = build(True, html=html).render(values())
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = parse(_unstuff(raw))
    html_part = message.get_body(("html",))
    assert html_part is not None and html_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert body(message, "html") == expected(html)


def test_dots_at_line_starts_are_stuffed_once_on_the_wire() -> None:
    template = build(True)
    wire, plain = template.render(values()), template.render(values(), wire=False)
    assert b"\r\n. A line that starts with a dot" in plain
    assert b"\r\n.. A line that starts with a dot" in wire
    assert _unstuff(wire) == plain


# The settings of config/defaults.py, which every app starts from.
DEFAULTS = {name: value for name, value in vars(config.defaults).items() if name.isupper()}


def test_the_list_id_defaults_to_the_site_under_the_from_domain() -> None:
    settings = MailSettings.from_config(DEFAULTS | {"FROM": "Notizie <newsletter@città.it>", "BASE_URL": "https://n.it",
                                         "SITE_NAME": 'Notizie "Tech", Roma', "LIST_ID": None})
    assert settings.list_id == '"Notizie \\"Tech\\", Roma" <digest.xn--citt-3na.it>'
    message = parse(header("List-Id", settings.list_id) + b"\r\n")
    assert message["List-Id"].endswith("<digest.xn--citt-3na.it>")
    assert MailSettings.from_config(DEFAULTS | {"FROM": "a@example.it", "BASE_URL": "https://n.it",
                                     "LIST_ID": "News <news.example.it>"}).list_id == "News <news.example.it>"
    # A name that is not ASCII: encoded-words, never inside quotes (RFC 2047, 5), and it parses back.
    italian = MailSettings.from_config(DEFAULTS | {"FROM": "a@example.it", "BASE_URL": "https://n.it",
                                        "SITE_NAME": 'Notizie "Più", Roma', "LIST_ID": None}).list_id
    folded = header("List-Id", italian)
    assert b'"' not in folded and b"=?utf-8?" in folded
    assert parse(folded + b"\r\n")["List-Id"] == "Notizie Più Roma <digest.example.it>"


def test_a_mailto_unsubscribe_follows_the_link_when_configured() -> None:
    settings = MailSettings(**{**SETTINGS.__dict__, "unsubscribe_mailto": "leave@example.it"})
    message = parse(build(True, settings=settings).render(values(), wire=False))
    assert message["List-Unsubscribe"] == (
        "<https://news.example.it/unsubscribe/MTI.unsubscribe-token>, <mailto:leave@example.it?subject=unsubscribe>"
    )


def test_a_line_break_in_a_header_value_cannot_add_a_header() -> None:
    folded = header("Subject", "News\r\nBcc: victim@example.org")
    message = parse(folded + b"\r\n")
    assert message["Bcc"] is None and "Bcc: victim@example.org" in message["Subject"]


@pytest.mark.parametrize("subject", [
    "Notizie Tech — un oggetto molto lungo àèìòù 🚀👩‍💻 che supera di gran lunga la riga normale di un client",
    "Le notizie – più belle",
    "  spazi  doppi e àccenti alla fine  ",
    "€" * 80,
])
def test_a_non_ascii_subject_decodes_back_exactly_in_short_encoded_words(subject: str) -> None:
    folded = header("Subject", subject)
    lines = folded.split(b"\r\n")[:-1]
    assert all(len(line) <= 78 for line in lines), lines
    words = re.findall(rb"=\?utf-8\?b\?[^?]*\?=", folded)
    assert words and all(len(word) <= 75 for word in words)
    assert parse(folded + b"\r\n")["Subject"] == subject


def test_each_render_gives_each_reader_their_own_tokens() -> None:
    template = build(True)
    one = parse(template.render(values("AAA.one", "BBB.one"), wire=False))
    two = parse(template.render(values("AAA.two", "BBB.two"), wire=False))
    assert "AAA.one" in body(one, "plain") and "AAA.two" in body(two, "plain")
    assert "AAA.one" not in body(two, "html")


@pytest.mark.parametrize("seed", range(40))
def test_quoted_printable_keeps_any_text_and_never_splits_a_token(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "ab =\t.è€😀\n<>\"'&-_/" + "x" * 10
    text = "".join(
        rng.choice(alphabet) if rng.random() > 0.02 else rng.choice(PLACEHOLDERS)
        for _ in range(rng.randint(0, 3000))
    )
    text = text.rstrip("\n") + "\n"
    pieces = split_slots(text, PLACEHOLDERS)
    encoded = encode(pieces, "quoted-printable")
    token = "T" * SLOT_WIDTH  # the widest a token may be
    raw = b"".join(p if isinstance(p, bytes) else token.encode() for p in encoded)
    assert all(len(line) <= 76 for line in raw.split(b"\r\n"))
    assert raw.isascii()
    assert quopri.decodestring(raw).decode("utf-8").replace("\r\n", "\n") == text.replace(
        PLACEHOLDERS[0], token).replace(PLACEHOLDERS[1], token)


def test_choose_encoding() -> None:
    assert choose_encoding(["plain ascii\n"], eightbit=False) == "7bit"
    assert choose_encoding(["però\n"], eightbit=True) == "8bit"
    assert choose_encoding(["però\n"], eightbit=False) == "quoted-printable"
    assert choose_encoding(["x" * 990, 0, "\n"], eightbit=True) == "quoted-printable"  # the token would pass 998
    assert choose_encoding(["x" * 900, 0, "\n"], eightbit=True) == "7bit"


def _unstuff(wire: bytes) -> bytes:
    return re.sub(rb"(?m)^\.\.", b".", wire)
