"""Short excerpts of article summaries, in HTML and in text.

A feed's summary may be a whole article with images, tables and embeds that
break a 600 px mail and push it past Gmail's clipping size. A digest shows a
few lines: inline markup kept, blocks flattened into one paragraph, media
dropped, links made absolute against the article (not against our site).
"""

from __future__ import annotations

import contextlib
import html
from urllib.parse import urlsplit

from lxml import html as lxml_html
from lxml.etree import ParserError

EXCERPT_CHARS = 300
ELLIPSIS = "…"
# Dropped with their content: media and anything laid out on its own.
DROP = ("img", "picture", "video", "audio", "iframe", "object", "embed", "figure", "table",
        "svg", "math", "form", "script", "style", "noscript", "template", "canvas")
# Kept as markup; every other element is unwrapped (its text stays).
KEEP = ("a", "b", "strong", "i", "em", "code", "s", "u", "sub", "sup", "abbr", "q", "mark", "small")
LINK_SCHEMES = ("http", "https", "mailto")


def _collapse(text: str) -> str:
    """Runs of white space as one space, keeping a leading and trailing one."""
    if not text:
        return text
    inner = " ".join(text.split())
    if not inner:
        return " "
    return (" " if text[0].isspace() else "") + inner + (" " if text[-1].isspace() else "")


def _cut_words(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with an ellipsis."""
    cut = text[:limit]
    if " " in cut.strip():
        cut = cut.rstrip()[: cut.rstrip().rfind(" ")]
    return cut.rstrip(" ,;:.-–—") + ELLIPSIS


def excerpt_text(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first ``limit`` characters of a plain-text summary, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else _cut_words(flat, limit)


def text_of(fragment: str) -> str:
    """The text of an HTML fragment (for a feed that gave no text summary)."""
    if not fragment.strip():
        return ""
    try:
        root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    except (ParserError, ValueError):
        return fragment
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag not in KEEP and element is not root:
            element.tail = " " + (element.tail or "")  # "<p>uno</p><p>due</p>" is two words
    return " ".join(str(root.text_content()).split())


def _take(text: str | None, budget: int) -> tuple[str | None, int]:
    """Spend ``budget`` characters on ``text``; a negative budget means "already cut"."""
    if not text:
        return text, budget
    text = _collapse(text)
    if budget < 0:
        return None, budget
    if budget == 0:
        return (ELLIPSIS, -1) if text.strip() else (None, budget)
    if len(text) <= budget:
        return text, budget - len(text)
    return _cut_words(text, budget), -1


def _truncate(element: lxml_html.HtmlElement, budget: int) -> int:
    """Keep ``budget`` characters of text under ``element``, in document order."""
    element.text, budget = _take(element.text, budget)
    for child in list(element):
        if budget < 0:
            element.remove(child)  # with its tail: everything after the cut
            continue
        budget = _truncate(child, budget)
        child.tail, budget = _take(child.tail, budget)
    return budget


def excerpt_html(fragment: str, article_url: str, limit: int = EXCERPT_CHARS) -> str:
    """A short, flat excerpt of a sanitised HTML summary (see the module docstring)."""
    if not fragment.strip():
        return ""
    try:
        root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    except (ParserError, ValueError):
        return html.escape(excerpt_text(fragment, limit), quote=False)
    for element in [e for e in root.iter(*DROP) if e is not root]:
        element.drop_tree()
    for element in [e for e in root.iter() if e is not root]:
        if not isinstance(element.tag, str):  # comments, processing instructions
            element.drop_tree()
        elif element.tag not in KEEP:
            element.tail = " " + (element.tail or "")  # a <p> or <br> ends a word
            element.drop_tag()
    with contextlib.suppress(ValueError):  # a malformed article URL: relative links stay relative
        root.make_links_absolute(article_url, resolve_base_href=False)
    for element in [e for e in root.iter() if e is not root]:
        # Our stylesheet styles the excerpt: the feed's classes and styles go.
        href = element.get("href") if element.tag == "a" else None
        element.attrib.clear()
        if element.tag == "a":
            if href and urlsplit(href).scheme in LINK_SCHEMES:
                element.set("href", href)
            else:
                element.drop_tag()
    root.text = (root.text or "").lstrip()
    _truncate(root, limit)
    head = html.escape(root.text or "", quote=False)
    body = "".join(lxml_html.tostring(child, encoding="unicode") for child in root)
    return (head + body).strip()
