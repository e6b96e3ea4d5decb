"""The digest mail of one edition, serialised once, filled in per reader.

Building an ``EmailMessage`` per reader costs more CPU than sending it
(figures: bench/FIGURES.md). So each edition is serialised once into final bytes (CRLF,
dot-stuffed for DATA, every line within 998 octets) cut into constant chunks
around five slots; per reader only bytes are joined: the To address, the
Date, the Message-ID and the two signed tokens.
"""

from __future__ import annotations

import base64
import email.policy
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr, quote
from typing import Any

# Slots 0 and 1 are the body placeholders, in the order split_slots is given them.
UNSUBSCRIBE, PREFERENCES, TO, DATE, MESSAGE_ID = range(5)
_POLICY = email.policy.SMTP
_STUFF = re.compile(rb"\r\n\.")


def header(name: str, value: str) -> bytes:
    """One header, folded, RFC 2047-encoded where it is not ASCII, CRLF-ended.

    Line breaks in ``value`` become spaces: a header never grows a second one.
    """
    value = " ".join(value.splitlines())
    if name.lower() == "subject" and not value.isascii():
        return _encoded_words(name, value)
    folded: str = _POLICY.header_factory(name, value).fold(policy=_POLICY)
    return folded.encode("ascii")


def _encoded_words(name: str, value: str) -> bytes:
    """An unstructured header as RFC 2047 encoded-words, one a line, each within 75 characters.

    The whole text is encoded, spaces included: the folding whitespace
    between two encoded-words is dropped when they are decoded, so a space
    kept outside them would be lost, and the email package's own folder
    loses (and doubles) spaces around the words it encodes. Words are cut
    between characters, never inside a UTF-8 sequence.
    """
    words: list[str] = []
    chunk = b""
    # The first word shares its line with the name: fewer octets, so the line stays within 78.
    room = max(3, (78 - len(name) - 2 - 12) // 4 * 3)
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > room:
            words.append(_b_word(chunk))
            chunk, room = b"", _WORD_OCTETS
        chunk += encoded
    words.append(_b_word(chunk))
    return f"{name}: ".encode("ascii") + "\r\n ".join(words).encode("ascii") + b"\r\n"


# 45 octets make 60 base64 characters: "=?utf-8?b?" + 60 + "?=" is 72 (RFC 2047: at most 75).
_WORD_OCTETS = 45


def _b_word(octets: bytes) -> str:
    """One "B" encoded-word."""
    return f"=?utf-8?b?{base64.b64encode(octets).decode('ascii')}?="


@dataclass(frozen=True)
class MailSettings:
    """What every mail of a run shares, read once from the configuration."""

    from_header: str
    envelope_from: str
    base_url: str
    list_id: str
    unsubscribe_mailto: str | None
    domain: str
    # A bounce address of our own (MAILER_BOUNCE_ADDRESS): each digest's envelope
    # sender is its VERP form, bounce+<id>-<mac>@domain (see ``stamp.py``).
    verp: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MailSettings:
        """From FROM, BOUNCE_ADDRESS, BASE_URL, LIST_ID and UNSUBSCRIBE_MAILTO."""
        from_address = parseaddr(config["FROM"])[1]
        bounce = config["BOUNCE_ADDRESS"] or from_address
        return cls(
            from_header=config["FROM"],
            envelope_from=bounce,
            base_url=str(config["BASE_URL"]).rstrip("/"),
            list_id=config["LIST_ID"] or _list_id(str(config["SITE_NAME"]), from_address),
            unsubscribe_mailto=config["UNSUBSCRIBE_MAILTO"],
            domain=_ascii_domain(from_address.rpartition("@")[2]) or "localhost",
            verp=bool(config["BOUNCE_ADDRESS"]),
        )


def _list_id(site_name: str, from_address: str) -> str:
    """The List-Id under the From domain (RFC 2919), named after the site: ``"Site" <digest.example.it>``."""
    domain = _ascii_domain(from_address.rpartition("@")[2]) or "localhost"
    if not site_name:
        return f"<digest.{domain}>"
    if site_name.isascii():
        return f'"{quote(site_name)}" <digest.{domain}>'
    # Not ASCII: the phrase becomes encoded-words when folded, which may not sit
    # inside quotes (RFC 2047, 5); so no quotes, and no character that would need them.
    words = " ".join(re.sub(r'[()<>@,;:\\".\[\]]', " ", site_name).split())
    return f"{words} <digest.{domain}>"


def _ascii_domain(domain: str) -> str:
    """An IDN domain in its ASCII (xn--) form, for the Message-ID."""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain.encode("ascii", "ignore").decode("ascii")


@dataclass(frozen=True)
class Template:
    """A mail as constant chunks and slots: ``chunks[0] slot chunks[1] slot ...``.

    ``chunks`` are dot-stuffed for DATA; ``plain`` are the same bytes as they
    are (what DKIM signs). ``eightbit`` says the mail needs BODY=8BITMIME.
    """

    chunks: tuple[bytes, ...]
    plain: tuple[bytes, ...]
    slots: tuple[int, ...]
    eightbit: bool

    def render(self, values: Sequence[bytes], *, wire: bool = True) -> bytes:
        """The mail with ``values[slot]`` in every slot; ``wire``: dot-stuffed."""
        out: list[bytes] = [b""] * (2 * len(self.slots) + 1)
        out[::2] = self.chunks if wire else self.plain
        out[1::2] = [values[slot] for slot in self.slots]
        return b"".join(out)


def _template(pieces: Sequence[Piece]) -> Template:
    """Chunks and slots from a list of bytes and slot numbers."""
    chunks: list[bytes] = [b""]
    slots: list[int] = []
    for piece in pieces:
        if isinstance(piece, int):
            slots.append(piece)
            chunks.append(b"")
        else:
            chunks[-1] += piece
    eightbit = any(not chunk.isascii() for chunk in chunks)
    # Stuff the dots once here: slot values never start a line (tokens
    # never begin with "."; the header values follow their names).
    stuffed = [_STUFF.sub(b"\r\n..", chunk) for chunk in chunks]
    if stuffed[0].startswith(b"."):
        stuffed[0] = b"." + stuffed[0]
    return Template(tuple(stuffed), tuple(chunks), tuple(slots), eightbit)


def digest_template(settings: MailSettings, *, subject: str, text: str, html: str, language: str,
                    archive_url: str, eightbit: bool, placeholders: Sequence[str]) -> Template:
    """The template of one edition; ``eightbit``: the server offers 8BITMIME.

    ``placeholders`` are the unsubscribe and preferences placeholders of the
    edition's text and html, in that order.
    """
    unsubscribe = f"<{settings.base_url}/unsubscribe/".encode("ascii")
    mailto = f",\r\n <mailto:{settings.unsubscribe_mailto}?subject=unsubscribe>" if settings.unsubscribe_mailto else ""
    return _template([
        header("From", settings.from_header),
        b"To: ", TO, b"\r\n",
        header("Subject", subject),
        b"Date: ", DATE, b"\r\n",
        b"Message-ID: ", MESSAGE_ID, b"\r\n",
        b"MIME-Version: 1.0\r\n",
        header("Content-Language", language),
        header("List-Id", settings.list_id),
        b"List-Unsubscribe: ", unsubscribe, UNSUBSCRIBE, b">", mailto.encode("ascii"), b"\r\n",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        header("List-Archive", f"<{archive_url}>"),
        b"Precedence: bulk\r\n",
        *_alternative(text, html, eightbit, placeholders),
    ])


def transactional_mail(settings: MailSettings, *, to: str, subject: str, text: str, html: str, eightbit: bool,
                       message_id: str, date: str) -> tuple[bytes, bool]:
    """A one-off mail (a confirmation) as plain bytes, and whether it needs BODY=8BITMIME.

    Built like the digest (an ``EmailMessage`` would cost a millisecond and
    a half, more than the rest of the send); no list headers: it is not list
    mail, and RFC 3834's Auto-Submitted keeps auto-responders from answering.
    """
    template = _template([
        header("From", settings.from_header),
        b"To: ", to.encode("utf-8"), b"\r\n",  # UTF-8 only where SMTPUTF8 lets it through (envelope_address)
        header("Subject", subject),
        header("Date", date),
        header("Message-ID", message_id),
        b"Auto-Submitted: auto-generated\r\n",
        b"MIME-Version: 1.0\r\n",
        *_alternative(text, html, eightbit, ()),
    ])
    return template.render((), wire=False), template.eightbit


def _alternative(text: str, html: str, eightbit: bool, placeholders: Sequence[str]) -> list[Piece]:
    """The Content-Type header and the two parts of a multipart/alternative body."""
    boundary = f"=_{uuid.uuid4().hex}"
    parts = []
    for subtype, content in (("plain", text), ("html", html)):
        normalised = content.replace("\r\n", "\n").replace("\r", "\n")
        if not normalised.endswith("\n"):
            normalised += "\n"
        if boundary in normalised:  # a 128-bit random value: never, but never say never
            return _alternative(text, html, eightbit, placeholders)
        cut = split_slots(normalised, placeholders)
        cte = choose_encoding(cut, eightbit)
        parts.append((subtype, cte, encode(cut, cte)))
    pieces: list[Piece] = [f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii")]
    # The CRLF before a boundary belongs to the boundary: each part's own last
    # line break needs one more, or the reader's copy loses it.
    for number, (subtype, cte, body) in enumerate(parts):
        delimiter = ("\r\n" if number else "") + f"--{boundary}\r\n"
        pieces.append(
            f"{delimiter}Content-Type: text/{subtype}; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode("ascii")
        )
        pieces.extend(body)
    pieces.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    return pieces


def message_id(settings: MailSettings, digest_id: int, delivery_id: int, stamp: str, mac: str) -> bytes:
    """A Message-ID unique to one reader's copy of one digest: ``<digest-D.N.S.MAC@domain>``.

    The same on every attempt, so a copy sent twice after a crash is the
    same message to the reader's mail program. ``mac`` (``stamp.Stamper``)
    lets a bounce or complaint that quotes it prove it is about this copy.
    """
    return f"<digest-{digest_id}.{delivery_id}.{stamp}.{mac}@{settings.domain}>".encode("ascii")


# --- body parts ----------------------------------------------------------
# Body parts encoded once, with holes where each reader's tokens go.
#
# A part becomes a list of byte chunks and slot numbers (``Piece``); the slots
# are filled per reader with plain ASCII values (tokens) of at most
# ``SLOT_WIDTH`` octets, so nothing is encoded per reader. The transfer
# encoding is picked so that the placeholders survive it whole:
#
# - 7bit: ASCII, every line within 998 octets (with the widest token);
# - 8bit: the same with UTF-8, when the server offers 8BITMIME;
# - quoted-printable otherwise (no 8BITMIME, or a line too long): our own
#   encoder, which never splits a slot across a soft line break. Base64 would
#   scramble the placeholders, so it is never used.

# Widest value a body slot may take: a signed token of a 19-digit id is 54.
SLOT_WIDTH = 64
MAX_LINE = 998
QP_LINE = 76

Piece = bytes | int


def split_slots(text: str, placeholders: Sequence[str]) -> list[str | int]:
    """``text`` cut at every placeholder: strings, and the placeholder's index."""
    if not placeholders:
        return [text]
    pattern = re.compile("|".join(re.escape(p) for p in placeholders))
    pieces: list[str | int] = []
    position = 0
    for match in pattern.finditer(text):
        pieces.append(text[position : match.start()])
        pieces.append(placeholders.index(match.group()))
        position = match.end()
    pieces.append(text[position:])
    return [p for p in pieces if p != ""]


def _lines_fit(pieces: Sequence[str | int]) -> bool:
    """Whether every line stays within 998 octets with the widest slot values."""
    length = 0
    for piece in pieces:
        if isinstance(piece, int):
            length += SLOT_WIDTH
            if length > MAX_LINE:
                return False
            continue
        lines = piece.split("\n")
        for index, line in enumerate(lines):
            if index:
                length = 0
            length += len(line.encode("utf-8"))
            if length > MAX_LINE:
                return False
    return True


def choose_encoding(pieces: Sequence[str | int], eightbit: bool) -> str:
    """"7bit", "8bit" (only when ``eightbit``: the server takes it) or "quoted-printable"."""
    if not _lines_fit(pieces):
        return "quoted-printable"
    if all(p.isascii() for p in pieces if isinstance(p, str)):
        return "7bit"
    return "8bit" if eightbit else "quoted-printable"


def encode(pieces: Sequence[str | int], encoding: str) -> list[Piece]:
    """The part's body, CRLF line ends, in ``encoding`` (text already "\\n"-normalised)."""
    if encoding == "quoted-printable":
        return _merge(_quoted_printable(pieces))
    return _merge(p if isinstance(p, int) else p.replace("\n", "\r\n").encode("utf-8") for p in pieces)


def _merge(pieces: Iterable[Piece]) -> list[Piece]:
    """Join neighbouring byte chunks, so a template alternates chunk, slot, chunk."""
    merged: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        elif piece != b"":
            merged.append(piece)
    return merged


_SAFE = re.compile(r"[!-<>-~]+")  # printable ASCII but "=": kept as it is


def _units(line: str) -> Iterable[tuple[str, int]]:
    """Quoted-printable units of one line, each with its width: never split."""
    position = 0
    while position < len(line):
        match = _SAFE.match(line, position)
        if match:
            for char in match.group():
                yield char, 1
            position = match.end()
            continue
        char = line[position]
        position += 1
        if char in " \t" and position < len(line):
            yield char, 1
        else:  # "=", a space at the end of a line, control and non-ASCII characters
            encoded = "".join(f"={byte:02X}" for byte in char.encode("utf-8"))
            yield encoded, len(encoded)


def _quoted_printable(pieces: Sequence[str | int]) -> Iterable[Piece]:
    """RFC 2045 quoted-printable of text with slots; a slot counts as SLOT_WIDTH."""
    width = 0
    for index, piece in enumerate(pieces):
        if isinstance(piece, int):
            if width + SLOT_WIDTH > QP_LINE - 1:
                yield b"=\r\n"
                width = 0
            yield piece
            width += SLOT_WIDTH
            continue
        lines = piece.split("\n")
        for number, line in enumerate(lines):
            if number:
                yield b"\r\n"
                width = 0
            # Whitespace before a slot is not at the end of a line.
            followed = number == len(lines) - 1 and index + 1 < len(pieces)
            out: list[str] = []
            for unit, size in _units(line + ("x" if followed else "")):
                if width + size > QP_LINE - 1:
                    out.append("=\r\n")
                    width = 0
                out.append(unit)
                width += size
            if followed:
                out.pop()
                width -= 1
            yield "".join(out).encode("ascii")
