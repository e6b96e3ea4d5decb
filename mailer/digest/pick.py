"""Which articles a digest carries, and how an edition groups them.

The articles of a digest are those no digest has carried yet, from enabled
feeds. An edition shows the newest ``DIGEST_MAX_ARTICLES`` of its readers'
topics, grouped by topic in the configured order, newest first in each
section; what is left over becomes the "more on the site" line. Every new
article belongs to the digest all the same, so an article beyond the cap never
turns up, stale, in next week's digest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from mailer.digest.excerpt import excerpt_html, excerpt_text, text_of
from mailer.models import Article, Feed
from mailer.topics import topic_name


@dataclass(frozen=True)
class Item:
    """One article as the templates see it: excerpts made once, for every edition."""

    id: int
    topic: str
    title: str
    url: str | None
    source: str
    published_at: datetime
    summary_html: str
    summary_text: str
    image_url: str | None


@dataclass
class Section:
    """The articles of one topic in an edition."""

    topic: str
    name: str
    items: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class EditionContent:
    """What one edition shows: its sections, and how many articles it left out."""

    sections: list[Section]
    shown: int
    more: int

    def items(self) -> list[Item]:
        """Every article shown, section by section."""
        return [item for section in self.sections for item in section.items]


def new_articles(session: Session) -> list[Article]:
    """The articles no digest carried yet, from enabled feeds, newest first."""
    query = (
        select(Article)
        .join(Feed, Article.feed_id == Feed.id)
        .where(Article.digest_id.is_(None), Feed.enabled.is_(True))
        .options(joinedload(Article.feed))
        .order_by(Article.published_at.desc(), Article.id.desc())
    )
    return list(session.scalars(query))


def web_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL; anything else never becomes a link."""
    if url and urlsplit(url.strip()).scheme in ("http", "https") and urlsplit(url.strip()).netloc:
        return url.strip()
    return None


def to_item(article: Article) -> Item:
    """The template view of ``article``."""
    url = web_url(article.url)
    source = " ".join((article.feed.title or "").split()) or urlsplit(url or "").hostname or ""
    summary_text = article.summary_text or ""
    if not summary_text.strip():
        summary_text = text_of(article.summary_html or "")
    return Item(
        id=article.id,
        topic=article.topic,
        title=" ".join(article.title.split()) or (url or ""),
        url=url,
        source=source,
        published_at=article.published_at,
        summary_html=excerpt_html(article.summary_html or "", url or ""),
        summary_text=excerpt_text(summary_text),
        image_url=web_url(article.image_url),
    )


def edition_content(
    items: Sequence[Item], wanted: Collection[str] | None, cap: int, config: Mapping[str, Any], language: str
) -> EditionContent:
    """The sections of an edition for readers of ``wanted`` topics (None: all).

    ``items`` come newest first; the newest ``cap`` of the wanted ones are shown.
    """
    chosen = [item for item in items if wanted is None or item.topic in wanted]
    shown = chosen[: max(cap, 0)]
    topics: Mapping[str, Any] = config["TOPICS"]
    order = {slug: index for index, slug in enumerate(topics)}
    sections: dict[str, Section] = {}
    # Configured topics first in their order; a topic since removed from the
    # configuration still gets a section, after them, under its slug.
    for item in sorted(shown, key=lambda i: (order.get(i.topic, len(order)), i.topic)):
        section = sections.get(item.topic)
        if section is None:
            section = sections[item.topic] = Section(item.topic, topic_name(topics, item.topic, language))
        section.items.append(item)
    for section in sections.values():
        section.items.sort(key=lambda i: (i.published_at, i.id), reverse=True)
    return EditionContent(list(sections.values()), len(shown), len(chosen) - len(shown))
