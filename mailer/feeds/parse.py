"""Feed bytes -> entries, with the XML checked before feedparser sees it.

Entity declarations are what XXE (``<!ENTITY x SYSTEM "file:///etc/passwd">``)
and entity expansion ("billion laughs") need, and they can only appear in the
DTD before the root element. So defusedxml reads the prolog with entities and
external references forbidden and stops at the root element: the check costs
nothing on a big feed, and malformed markup further on is left to feedparser's
tolerant parser, as feeds in the wild need.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import ParseError

import feedparser
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from feedparser.encodings import convert_to_utf8

from mailer.feeds.urls import http_url

# feedparser's own split of the prolog: everything before the first element.
_FIRST_ELEMENT = re.compile(rb"<\w")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
# "someone@example.org (Some One)" and "Some One (someone@example.org)"
_MAIL_THEN_NAME = re.compile(r"^[^\s@()]+@[^\s()]+\s*\((.+)\)$")
_NAME_THEN_MAIL = re.compile(r"^([^@()]+?)\s*\(\s*[^\s@()]+@[^\s()]+\s*\)$")
_IMAGE_TYPES = ("image/",)
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")


class FeedParseError(Exception):
    """The body is not a usable feed, or was refused; ``reason`` is one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ParsedEntry:
    """One item as the feed gave it: markup still raw, links absolute."""

    guid: str | None
    link: str | None
    title: str
    summary_html: str
    content_html: str
    author: str | None
    categories: tuple[str, ...]
    images: tuple[str, ...]
    published: datetime | None

    def fingerprint(self) -> str:
        """A hash of what a reader sees (not the date): unchanged items skip all work."""
        parts = (self.link, self.title, self.summary_html, self.content_html, self.author,
                 "\x1f".join(self.categories), "\x1f".join(self.images))
        return hashlib.sha256("\x1e".join(p or "" for p in parts).encode("utf-8", "replace")).hexdigest()


@dataclass
class ParsedFeed:
    """The feed's title, its entries, and a warning when the XML had to be repaired."""

    title: str | None
    entries: list[ParsedEntry] = field(default_factory=list)
    warning: str | None = None


class _RootReachedError(Exception):
    """Raised by the check's target at the first element: the prolog is over."""


class _RootTarget:
    """An ElementTree target that stops parsing at the root element."""

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        """The root element: stop."""
        raise _RootReachedError

    def close(self) -> None:
        """Nothing was built."""


def check_xml(data: bytes, content_type: str | None = None) -> None:
    """Raise FeedParseError if the document declares entities (XXE, entity expansion)."""
    parser = DefusedXMLParser(target=_RootTarget(), forbid_dtd=False, forbid_entities=True,
                              forbid_external=True)
    try:
        parser.feed(data)
        parser.close()
    except _RootReachedError:
        return
    except DefusedXmlException as exc:
        raise FeedParseError(f"refused: the XML declares entities ({type(exc).__name__}; "
                             "possible XXE or entity-expansion attack)") from None
    except ParseError:
        pass
    # The prolog did not parse (an encoding only the HTTP header names, or
    # broken markup): look at it the way feedparser will, as UTF-8.
    converted = convert_to_utf8({"content-type": content_type or "application/xml"}, data, {})
    first = _FIRST_ELEMENT.search(converted)
    if _ENTITY_DECLARATION.search(converted[: first.start() if first else len(converted)]):
        raise FeedParseError("refused: the XML declares entities (possible XXE or entity-expansion attack)")


def parse_feed(data: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Check and parse ``data`` fetched from ``url``; raise FeedParseError."""
    check_xml(data, content_type)
    # A stream, never bytes: feedparser opens a bytes argument as a file name.
    result = feedparser.parse(
        io.BytesIO(data),
        response_headers={"content-location": url, "content-type": content_type or "application/xml"},
        sanitize_html=False,  # nh3 does it, with our allow-list
        resolve_relative_uris=True,
    )
    problem = result.get("bozo_exception")
    # Wrong charset declarations and text/html content types are everyday
    # noise that feedparser already worked around; they are not failures.
    benign = isinstance(problem, feedparser.ThingsNobodyCaresAboutButMe)
    if not result.get("version") and not result.entries:
        detail = f": {_one_line(problem)}" if problem and not benign else ""
        raise FeedParseError(f"not an RSS or Atom feed{detail}")
    if result.get("bozo") and not benign and not result.entries:
        raise FeedParseError(f"malformed XML: {_one_line(problem)}")
    warning = None
    if result.get("bozo") and not benign:
        warning = f"malformed XML, {len(result.entries)} entries recovered: {_one_line(problem)}"
    title = result.feed.get("title") or None
    return ParsedFeed(title=title, entries=[_entry(e, url) for e in result.entries], warning=warning)


def _entry(entry: Mapping[str, Any], feed_url: str) -> ParsedEntry:
    """A ParsedEntry from one of feedparser's entries."""
    link = http_url(entry.get("link"), base=feed_url)
    guid = entry.get("id") or None
    if link is None and entry.get("guidislink"):
        link = http_url(guid, base=feed_url)
    content = entry.get("content") or []
    content_html = _as_html(content[0]) if content else ""
    summary = entry.get("summary_detail") or ({"value": entry.get("summary"), "type": "text/html"}
                                              if entry.get("summary") else None)
    return ParsedEntry(
        guid=_CONTROL.sub("", guid).strip() or None if guid else None,
        link=link,
        title=str(entry.get("title") or ""),
        summary_html=_as_html(summary) if summary else content_html,
        content_html=content_html,
        author=_author(entry),
        categories=tuple(_categories(entry)),
        images=tuple(_images(entry, link or feed_url)),
        published=_published(entry),
    )


def _as_html(detail: Mapping[str, Any]) -> str:
    """A text construct's value as HTML (plain text is escaped, not interpreted)."""
    value = str(detail.get("value") or "")
    if detail.get("type") == "text/plain":
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value


def _author(entry: Mapping[str, Any]) -> str | None:
    """The author's name; never an address (RSS's ``<author>`` is "mail (Name)")."""
    raw = " ".join(str(entry.get("author") or "").split())
    match = _MAIL_THEN_NAME.match(raw) or _NAME_THEN_MAIL.match(raw)
    if match:
        return match.group(1)
    if raw and "@" not in raw:
        return raw
    name = str((entry.get("author_detail") or {}).get("name") or "")
    return name if name and "@" not in name else None


def _categories(entry: Mapping[str, Any]) -> list[str]:
    """Category terms (or labels), in feed order."""
    found = []
    for tag in entry.get("tags") or []:
        term = tag.get("term") or tag.get("label")
        if term and str(term).strip():
            found.append(str(term).strip())
    return found


def _images(entry: Mapping[str, Any], base: str) -> list[str]:
    """Image candidates: media:content, media:thumbnail, image enclosures, in that order."""
    found: list[str] = []
    for media in entry.get("media_content") or []:
        kind = str(media.get("type") or "")
        if media.get("medium") == "image" or kind.startswith(_IMAGE_TYPES) or (
                not kind and str(media.get("url", "")).lower().endswith(_IMAGE_EXTENSIONS)):
            found.append(str(media.get("url") or ""))
    found.extend(str(thumb.get("url") or "") for thumb in entry.get("media_thumbnail") or [])
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type") or "").startswith(_IMAGE_TYPES):
            found.append(str(link.get("href") or ""))
    return [url for url in (http_url(u, base=base) for u in found) if url]


def _published(entry: Mapping[str, Any]) -> datetime | None:
    """The publication (else update) time, naive UTC; None when absent or absurd."""
    parsed = entry.get("published_parsed") or entry.get("updated_parsed") or entry.get("created_parsed")
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return None


def _one_line(problem: object) -> str:
    """An exception as one short line."""
    return " ".join(str(problem).split())[:300] or type(problem).__name__
