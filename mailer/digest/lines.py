"""Line lengths: every line of a mail within 998 octets (RFC 5322 2.1.1).

``delivery/`` may send the parts as 8bit, where a longer line is illegal and
gets mangled by relays. premailer's output puts whole paragraphs on one line,
so long HTML lines are broken where a line break means the same as a space:
between attributes inside a tag, or at a space in text (never inside an
attribute value, a comment or ``<pre>``). The text part is wrapped for people
(78 columns) and hard-split only past the legal limit.
"""

from __future__ import annotations

import re
import textwrap

MAX_LINE_OCTETS = 998
TEXT_WIDTH = 78
# Where long HTML lines are broken: far enough below the limit that the
# per-reader tokens (longer than their placeholders) never push a line over.
HTML_FOLD_OCTETS = 300

# Elements whose text is not markup: a comment there would show.
_RAW = ("script", "style", "title", "textarea")
_TOKEN = re.compile(r"<!--.*?-->|<(?:[^>\"']|\"[^\"]*\"|'[^']*')*>|[^<]+|<", re.S)
_TAG_NAME = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)")
_TAG_PARTS = re.compile(r"(?:[^\s\"']|\"[^\"]*\"|'[^']*')+|\s+")
_ATOM = re.compile(r"&#?\w+;|.", re.S)
# A break comment: invisible, and unlike a space it adds nothing to the text.
BREAK_COMMENT = "<!--\n-->"


def _octets(text: str) -> int:
    return len(text.encode("utf-8"))


class _Folder:
    """Re-emits HTML, turning spaces into line breaks where a line runs long.

    Works on tokens (tags, comments, text runs), not characters: a space in
    text or between attributes is a break point; a long run without one gets
    break comments, never inside an entity or a raw-text element.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.out: list[str] = []
        self.width = 0  # octets since the last line break
        self.candidate = -1  # index in ``out`` of a space that may become a break
        self.raw = ""  # inside <style>, <title>...: text is not markup
        self.pre = 0  # inside <pre>: spaces are kept as they are

    def emit(self, piece: str) -> None:
        """Append ``piece``; break at the last candidate space once past the limit."""
        self.out.append(piece)
        if "\n" in piece:
            self.width = _octets(piece.rsplit("\n", 1)[1])
            self.candidate = -1
        else:
            self.width += _octets(piece)
        if self.width > self.limit and self.candidate >= 0:
            self.out[self.candidate] = "\n"
            self.width = sum(_octets(p) for p in self.out[self.candidate + 1:])
            self.candidate = -1

    def space(self) -> None:
        """A space that may become a line break."""
        self.emit(" ")
        self.candidate = len(self.out) - 1

    def fitting_text(self, text: str) -> None:
        """A text run that fits on the line: one piece, its last space kept as a candidate."""
        head, space, tail = text.rpartition(" ")
        if not space or "\n" in tail:
            self.emit(text)
            return
        self.emit(head)
        self.space()
        self.emit(tail)

    def word(self, word: str) -> None:
        """A run without break points: cut with break comments when too long."""
        if self.width + _octets(word) <= self.limit or self.raw:
            self.emit(word)
            return
        chunk: list[str] = []
        size = self.width
        for atom in _ATOM.findall(word):
            if size + _octets(atom) > self.limit and chunk:
                self.emit("".join(chunk))
                self.emit(BREAK_COMMENT)
                chunk, size = [], self.width
            chunk.append(atom)
            size += _octets(atom)
        self.emit("".join(chunk))

    def text(self, text: str) -> None:
        """A text run: its spaces are break points (outside <pre> and raw text)."""
        if self.raw or self.pre:
            self.word(text)
            return
        if self.width + _octets(text) <= self.limit:
            self.fitting_text(text)
            return
        for index, part in enumerate(text.split(" ")):
            if index:
                self.space()
            if part:
                self.word(part)

    def tag(self, tag: str) -> None:
        """A tag: the spaces between its attributes are break points."""
        match = _TAG_NAME.match(tag)
        if match:
            closing, name = match.group(1) == "/", match.group(2).lower()
            if name == "pre":
                self.pre = max(0, self.pre + (-1 if closing else 1))
            elif name in _RAW:
                self.raw = "" if closing else name
        if self.width + _octets(tag) <= self.limit and " " not in tag:
            self.emit(tag)
            return
        for part in _TAG_PARTS.findall(tag):
            if part == " ":
                self.space()
            else:
                self.emit(part)

    def fold(self, html: str) -> str:
        """The whole document, folded."""
        for token in _TOKEN.findall(html):
            if token.startswith("<!--"):
                self.emit(token)
            elif token.startswith("<") and len(token) > 1:
                if self.raw and not token.lower().startswith(f"</{self.raw}"):
                    self.emit(token)
                else:
                    self.tag(token)
            else:
                self.text(token)
        return "".join(self.out)


def fold_html(html: str, limit: int = HTML_FOLD_OCTETS) -> str:
    """``html`` with its long lines broken where a break changes nothing.

    Breaks replace a space between attributes or in text (outside ``<pre>``);
    a run of text with no space gets an empty comment with a line break in
    it. Only an attribute value longer than the limit stays on a long line.
    """
    return _Folder(limit).fold(html)


def hard_split(line: str, limit: int = MAX_LINE_OCTETS) -> list[str]:
    """``line`` cut into pieces of at most ``limit`` octets (last resort)."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        octets = len(char.encode("utf-8"))
        if size + octets > limit:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += octets
    pieces.append("".join(current))
    return pieces


def wrap_text(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """``text`` as lines of ``width`` columns, each starting with ``indent``.

    ``first`` replaces the indent of the first line (a bullet, say). Words
    are never broken (a URL stays whole and clickable) unless a single one is
    beyond the legal line length.
    """
    wrapper = textwrap.TextWrapper(
        width=width, initial_indent=indent if first is None else first, subsequent_indent=indent,
        break_long_words=False, break_on_hyphens=False,
    )
    lines = []
    for line in wrapper.wrap(" ".join(text.split())):
        lines.extend(hard_split(line) if len(line.encode("utf-8")) > MAX_LINE_OCTETS else [line])
    return "\n".join(lines)


def longest_line(text: str) -> int:
    """The length in octets of the longest line of ``text`` (CRLF or LF)."""
    return max((len(line.encode("utf-8")) for line in text.replace("\r\n", "\n").split("\n")), default=0)
