"""Parsed entries -> Article rows: each real article kept once.

- Identity is the guid, else the link without tracking parameters and
  fragment (``urls.dedup_key``); a link already kept from another feed is
  the same article too.
- A known item whose content changed updates the stored article; its
  ``digest_id`` and ``published_at`` stay, so it is never sent again, and
  neither is an item that only got a new date.
- No date: the time it was found. A date in the future: the time it was
  found (post-dated items must not sort first for weeks).
- Items published before ``Feed.keep_since`` are never kept: a new feed
  brings only its last FIRST_FETCH_DAYS days.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.feeds.parse import ParsedEntry
from mailer.feeds.sanitise import first_image, plain, summarise
from mailer.feeds.topics import TopicMapper, tidy_categories
from mailer.feeds.urls import clean_link, dedup_key, link_hash
from mailer.models import Article, Feed

CHUNK = 500  # keys per IN (...) query: well under every database's limit
TITLE_CHARS = 300
AUTHOR_CHARS = 200


@dataclass
class StoreReport:
    """What one store did: articles added, articles updated, items left out."""

    new: int = 0
    updated: int = 0
    skipped: int = 0


def store_entries(session: Session, feed: Feed, entries: Sequence[ParsedEntry],
                  config: Mapping[str, Any], now: datetime) -> StoreReport:
    """Add the new articles of ``feed`` and update the changed ones (caller commits)."""
    if feed.keep_since is None:
        feed.keep_since = now - timedelta(days=int(config["FIRST_FETCH_DAYS"]))
    report = StoreReport()
    candidates: dict[str, ParsedEntry] = {}
    for entry in entries:
        key = dedup_key(entry.guid, entry.link) if entry.link else None
        if key is None:
            report.skipped += 1  # nothing a reader could click
        elif key not in candidates:
            candidates[key] = entry  # a repeat inside one document: the first (newest) wins
    topic_of = TopicMapper(config)
    known = _known(session, feed.id, list(candidates))
    new_links = {key: link_hash(e.link or "") for key, e in candidates.items() if key not in known}
    elsewhere = _links_in_other_feeds(session, feed.id, list(new_links.values()))
    for key, entry in candidates.items():
        fingerprint = entry.fingerprint()
        if key in known:
            article_id, stored_fingerprint = known[key]
            if stored_fingerprint != fingerprint:
                article = session.get_one(Article, article_id)
                _fill(article, entry, config, topic_of)
                article.content_hash = fingerprint
                article.updated_at = now
                report.updated += 1
            continue
        published = min(entry.published, now) if entry.published else now
        if new_links[key] in elsewhere or published < feed.keep_since:
            report.skipped += 1
            continue
        article = Article(feed_id=feed.id, dedup_key=key, link_hash=new_links[key], content_hash=fingerprint,
                          published_at=published, found_at=now, updated_at=now)
        _fill(article, entry, config, topic_of)
        session.add(article)
        elsewhere.add(new_links[key])
        report.new += 1
    return report


def _fill(article: Article, entry: ParsedEntry, config: Mapping[str, Any], topic_of: TopicMapper) -> None:
    """Set what a reader sees from ``entry``, sanitised."""
    link = entry.link or article.url
    summary_html, summary_text = summarise(entry.summary_html, link, int(config["FEED_SUMMARY_CHARS"]))
    # Titles, names and categories are text, but feeds put markup in them
    # (escaped or not): it is always stripped, never shown as tags.
    title = plain(entry.title, limit=TITLE_CHARS)
    categories = tidy_categories(plain(c) for c in entry.categories)
    article.url = clean_link(link)
    article.title = title or plain(summary_text, is_html=False, limit=80) or article.url
    article.summary_html = summary_html
    article.summary_text = summary_text
    article.image_url = next(iter(entry.images), None) or first_image(entry.content_html or entry.summary_html, link)
    article.author = plain(entry.author, limit=AUTHOR_CHARS) or None
    article.categories = categories
    article.topic = topic_of(categories)


def _known(session: Session, feed_id: int, keys: list[str]) -> dict[str, tuple[int, str | None]]:
    """dedup_key -> (id, content_hash) of the feed's articles among ``keys``."""
    found: dict[str, tuple[int, str | None]] = {}
    for chunk in _chunks(keys):
        rows = session.execute(
            select(Article.dedup_key, Article.id, Article.content_hash)
            .where(Article.feed_id == feed_id, Article.dedup_key.in_(chunk))
        )
        found.update({key: (article_id, fingerprint) for key, article_id, fingerprint in rows})
    return found


def _links_in_other_feeds(session: Session, feed_id: int, hashes: list[str]) -> set[str]:
    """The link hashes among ``hashes`` already kept from another feed."""
    found: set[str] = set()
    for chunk in _chunks(hashes):
        found.update(h for h in session.scalars(
            select(Article.link_hash).where(Article.feed_id != feed_id, Article.link_hash.in_(chunk))
        ) if h)
    return found


def _chunks(values: list[str]) -> Iterable[list[str]]:
    """``values`` in slices of CHUNK."""
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]
