"""Picking: articles no digest carried, newest first, grouped by topic, capped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from mailer.digest.pick import edition_content, new_articles, to_item
from mailer.models import Article, Digest, DigestStatus, Feed
from tests.digest.conftest import NOW


def test_new_articles_are_those_no_digest_carried_from_enabled_feeds(
    session: Session, add_article: Callable[..., Article]
) -> None:
    older = add_article(published_at=NOW - timedelta(days=2))
    newer = add_article(published_at=NOW - timedelta(hours=1))
    digest = Digest(period="2026-W47", subject="s", status=DigestStatus.FINISHED)
    session.add(digest)
    session.flush()
    add_article(digest_id=digest.id)
    off = Feed(url="https://off.example.it/feed", enabled=False)
    session.add(off)
    session.flush()
    add_article(feed_id=off.id)
    assert [a.id for a in new_articles(session)] == [newer.id, older.id]


def _items(add_article: Callable[..., Article], specs: list[tuple[str, int]]) -> list[Any]:
    articles = [add_article(topic=topic, published_at=NOW - timedelta(hours=hours)) for topic, hours in specs]
    return [to_item(a) for a in sorted(articles, key=lambda a: a.published_at, reverse=True)]


def test_sections_follow_the_configured_topic_order_newest_first(
    app: Flask, add_article: Callable[..., Article]
) -> None:
    items = _items(add_article, [("web", 1), ("ai", 5), ("web", 3), ("ai", 2), ("security", 4)])
    content = edition_content(items, None, 30, app.config, "it")
    assert [s.topic for s in content.sections] == ["ai", "security", "web"]  # TOPICS order
    assert [s.name for s in content.sections] == ["Intelligenza artificiale", "Cybersecurity", "Web"]
    ai = content.sections[0].items
    assert ai[0].published_at > ai[1].published_at
    assert (content.shown, content.more) == (5, 0)
    assert edition_content(items, None, 30, app.config, "en").sections[0].name == "Artificial intelligence"


def test_the_cap_keeps_the_newest_and_counts_the_rest(app: Flask, add_article: Callable[..., Article]) -> None:
    items = _items(add_article, [("ai", hours) for hours in range(1, 8)])
    content = edition_content(items, None, 3, app.config, "it")
    assert (content.shown, content.more) == (3, 4)
    assert [i.published_at for i in content.items()] == [NOW - timedelta(hours=h) for h in (1, 2, 3)]


def test_an_edition_shows_only_the_readers_topics(app: Flask, add_article: Callable[..., Article]) -> None:
    items = _items(add_article, [("web", 1), ("ai", 2), ("security", 3), ("mobile", 4)])
    content = edition_content(items, frozenset({"security", "mobile"}), 30, app.config, "it")
    assert [s.topic for s in content.sections] == ["security", "mobile"]
    # The cap applies to what the reader gets, not to the whole digest.
    assert edition_content(items, frozenset({"mobile"}), 1, app.config, "it").items()[0].topic == "mobile"
    assert edition_content(items, frozenset({"hardware"}), 30, app.config, "it").shown == 0


def test_a_topic_no_longer_configured_still_gets_a_section_last(
    app: Flask, add_article: Callable[..., Article]
) -> None:
    items = _items(add_article, [("retired", 1), ("ai", 2)])
    content = edition_content(items, None, 30, app.config, "it")
    assert [(s.topic, s.name) for s in content.sections] == [("ai", "Intelligenza artificiale"),
                                                            ("retired", "retired")]


def test_items_never_link_to_other_schemes(add_article: Callable[..., Article]) -> None:
    item = to_item(add_article(url="javascript:alert(1)", image_url="data:image/png;base64,xx",
                               title="  Titolo \n su due righe ", summary_text="", summary_html="<p>Solo HTML</p>"))
    assert item.url is None and item.image_url is None
    assert item.title == "Titolo su due righe"
    assert item.summary_text == "Solo HTML"
    assert item.source == "Tech News Example"
