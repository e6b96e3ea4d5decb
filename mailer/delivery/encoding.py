"""Body parts encoded once, with holes where each reader's tokens go.

A part becomes a list of byte chunks and slot numbers (``Piece``); the slots
are filled per reader with plain ASCII values (tokens) of at most
``SLOT_WIDTH`` octets, so nothing is encoded per reader. The transfer
encoding is picked so that the placeholders survive it whole:

- 7bit: ASCII, every line within 998 octets (with the widest token);
- 8bit: the same with UTF-8, when the server offers 8BITMIME;
- quoted-printable otherwise (no 8BITMIME, or a line too long): our own
  encoder, which never splits a slot across a soft line break. Base64 would
  scramble the placeholders, so it is never used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

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
