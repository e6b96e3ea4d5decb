"""Feed markup -> HTML safe to put in a mail, cut to size, and its plain text.

nh3 (ammonia) does the cleaning with an allow-list: no script, style,
iframe, form or event handler survives, and links keep only http(s) URLs.
The cut walks the *cleaned* markup, counts visible characters, stops at a
word boundary and closes the tags still open; nh3 runs once more on the
result, so whatever the cut produced is well-formed and clean again.
Feed text is data, never a template: nothing here or downstream renders it
as Jinja, so ``{{7*7}}`` stays literal.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

import nh3

from mailer.feeds.urls import http_url

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "cite", "code", "del", "div", "em", "i", "ins", "kbd",
    "li", "mark", "ol", "p", "pre", "q", "s", "small", "strong", "sub", "sup", "u", "ul",
})
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}}
# Removed with their content: executable, embedded or interactive things
# whose text means nothing in a mail.
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math",
    "canvas", "audio", "video", "select", "textarea", "button", "head", "title", "frameset",
})
BLOCKS = frozenset({"p", "div", "blockquote", "pre", "ul", "ol", "li", *HEADINGS})
VOID = frozenset({"br"})
ELLIPSIS = "…"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_EMPTY_BLOCK = re.compile(r"<(p|div|li|blockquote)>\s*</\1>")
_PIXEL = re.compile(r"^0*1(px)?$")


def clean_html(markup: str, base: str | None = None, *, headings: bool = False) -> str:
    """``markup`` through the allow-list; relative links resolved against ``base``."""
    relative: object = ("rewrite_with_base", base) if base else "deny"
    return nh3.clean(
        _CONTROL.sub("", markup),
        tags=set(ALLOWED_TAGS | HEADINGS) if headings else set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={k: set(v) for k, v in ATTRIBUTES.items()},
        url_schemes={"http", "https"},
        url_relative=relative,  # type: ignore[arg-type]
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def plain(value: str | None, *, is_html: bool = True, limit: int | None = None) -> str:
    """One line of plain text (titles, authors): tags dropped, entities decoded."""
    if not value:
        return ""
    text = html.unescape(nh3.clean(value, tags=set(), clean_content_tags=set(DROPPED_WITH_CONTENT))) \
        if is_html else value
    text = _SPACES.sub(" ", _CONTROL.sub("", unicodedata.normalize("NFC", text))).strip()
    return cut_text(text, limit) if limit else text


def cut_text(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters, cut at a word boundary with an ellipsis.

    Only a single word longer than ``limit`` is cut inside the word.
    """
    if len(text) <= limit:
        return text
    prefix = _before_last_space(text, max(1, limit - 1))
    if not prefix:
        prefix = text[: max(1, limit - 1)]
        # Never leave a combining accent without its letter (marks NFC cannot fold).
        while prefix and unicodedata.combining(prefix[-1]):
            prefix = prefix[:-1]
    return prefix + ELLIPSIS


def _before_last_space(text: str, room: int) -> str | None:
    """``text`` up to the last space that leaves at most ``room`` characters; None if none.

    Trailing punctuation goes, so the ellipsis does not follow a comma.
    """
    space = text.rfind(" ", 0, room + 1)
    if space < 0:
        return None
    return text[:space].rstrip(" ,;:.-–—")


def summarise(markup: str, base: str | None, limit: int) -> tuple[str, str]:
    """The sanitised summary cut to about ``limit`` visible characters, and its plain text."""
    cleaned = clean_html(unicodedata.normalize("NFC", markup), base, headings=True)
    walker = _Cutter(limit)
    walker.feed(cleaned)
    walker.close()
    summary = clean_html(walker.result(), base)
    while _EMPTY_BLOCK.search(summary):  # an image-only paragraph leaves an empty one
        summary = _EMPTY_BLOCK.sub("", summary)
    summary = summary.strip()
    return summary, html_to_text(summary)


def html_to_text(markup: str) -> str:
    """The text of (clean) ``markup``: paragraphs separated by a blank line, "- " list items."""
    walker = _Text()
    walker.feed(markup)
    walker.close()
    return walker.result()


def first_image(markup: str, base: str | None) -> str | None:
    """The first ``<img>`` of ``markup`` worth showing (tracking pixels skipped)."""
    finder = _Images()
    finder.feed(markup)
    finder.close()
    for src, width, height in finder.found:
        if _PIXEL.match(width or "") or _PIXEL.match(height or ""):
            continue
        url = http_url(src, base=base)  # HTMLParser already decoded entities
        if url:
            return url
    return None


class _Cutter(HTMLParser):
    """Re-emits clean markup until ``limit`` visible characters, then closes open tags."""

    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.limit = limit
        self.count = 0
        self.done = False
        self.out: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if tag in HEADINGS:  # a heading inside a digest item: a bold paragraph
            self.out.append("<p><strong>")
            self.open.extend(["p", "strong"])
            return
        rendered = "".join(f' {k}="{html.escape(v or "", quote=True)}"' for k, v in attrs)
        self.out.append(f"<{tag}{rendered}>")
        if tag not in VOID:
            self.open.append(tag)
        if tag in BLOCKS and self.count:
            self.count += 1  # a block break reads as a space

    def handle_endtag(self, tag: str) -> None:
        if self.done:
            return
        names = ["strong", "p"] if tag in HEADINGS else [tag]
        for name in names:
            if name in self.open:
                while self.open:
                    last = self.open.pop()
                    self.out.append(f"</{last}>")
                    if last == name:
                        break

    def handle_data(self, data: str) -> None:
        if self.done:
            return
        text = _SPACES.sub(" ", data)
        if not self.count:
            text = text.lstrip()
        room = self.limit - self.count
        if len(text) <= room:
            self.out.append(html.escape(text, quote=False))
            self.count += len(text)
            return
        prefix = _before_last_space(text, room)
        if prefix is None:
            # No space left in this run of text: the cut falls where it began,
            # unless nothing came before (one enormous word: cut inside it).
            prefix = cut_text(text, room)[:-1] if not self.count else ""
        self.out.append(html.escape(prefix, quote=False) + ELLIPSIS)
        self.done = True

    def result(self) -> str:
        """The emitted markup with every open tag closed."""
        return "".join(self.out) + "".join(f"</{t}>" for t in reversed(self.open))


class _Text(HTMLParser):
    """Collects the text of markup, turning blocks and breaks into line breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCKS and tag != "li":  # list items follow each other line by line
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(_SPACES.sub(" ", data))

    def result(self) -> str:
        """The text, with at most one blank line in a row and no stray spaces."""
        lines = [line.strip() for line in "".join(self.parts).split("\n")]
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip()


class _Images(HTMLParser):
    """Finds ``<img>`` tags: (src, width, height)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str | None, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            values = dict(attrs)
            if values.get("src"):
                self.found.append((str(values["src"]), values.get("width"), values.get("height")))
