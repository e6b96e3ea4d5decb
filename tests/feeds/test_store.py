"""Keeping articles: each real article once, updates without resending, the history window."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import select

from mailer.db import get_sessionmaker
from mailer.models import Article, Digest, DigestStatus, utcnow


def rss(*items: dict[str, Any], build: str = "") -> bytes:
    """A small RSS 2.0 document; each item: guid, link, title, text, date, categories."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Prove</title>',
             "<link>https://prove.example/</link><description>x</description>",
             f"<lastBuildDate>{build}</lastBuildDate>" if build else ""]
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.get('title', 'Titolo'))}</title>")
        if "link" in item:
            parts.append(f"<link>{escape(item['link'])}</link>")
        if "guid" in item:
            parts.append(f'<guid isPermaLink="false">{escape(item["guid"])}</guid>')
        parts.append(f"<description>{escape(item.get('text', 'Testo.'))}</description>")
        parts.extend(f"<category>{escape(c)}</category>" for c in item.get("categories", []))
        if item.get("date") is not None:
            parts.append(f"<pubDate>{format_datetime(item['date'].replace(tzinfo=None), usegmt=False)}</pubDate>"
                         .replace("-0000", "+0000"))
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def _hours_ago(hours: float) -> datetime:
    return (utcnow() - timedelta(hours=hours)).replace(microsecond=0)


def test_a_known_guid_is_not_new_again(feed_server, add_feed_row, poll, articles):
    item = {"guid": "g1", "link": "https://prove.example/1", "date": _hours_ago(2)}
    add_feed_row(feed_server.add("/f.xml", rss(item, build="a")))
    assert poll()[0].new == 1
    feed_server.add("/f.xml", rss(item, build="b"))  # other bytes, same item
    [again] = poll()
    assert (again.new, again.updated, again.not_modified) == (0, 0, False)
    assert len(articles()) == 1


def test_links_differing_only_in_tracking_or_fragment_are_one_article(feed_server, add_feed_row, poll, articles):
    add_feed_row(feed_server.add("/f.xml", rss({"link": "https://prove.example/a?utm_source=rss&x=1"})))
    poll()
    feed_server.add("/f.xml", rss({"link": "https://prove.example/a?x=1&utm_medium=social&gclid=1#c"}))
    assert poll()[0].new == 0
    assert [a.dedup_key for a in articles()] == ["https://prove.example/a?x=1"]


def test_an_updated_item_updates_the_article_and_is_never_resent(app, feed_server, add_feed_row, poll, articles):
    posted = _hours_ago(5)
    item = {"guid": "g1", "link": "https://prove.example/1", "title": "Prima", "text": "Vecchio.", "date": posted}
    add_feed_row(feed_server.add("/f.xml", rss(item)))
    poll()
    with get_sessionmaker(app)() as session, session.begin():  # a digest carried it
        digest = Digest(period="2026-W10", subject="x", status=DigestStatus.FINISHED)
        session.add(digest)
        session.flush()
        session.scalars(select(Article)).one().digest_id = digest.id
        digest_id = digest.id
    feed_server.add("/f.xml", rss({**item, "title": "Seconda", "text": "Nuovo.", "date": _hours_ago(1)}))
    [result] = poll()
    assert (result.new, result.updated) == (0, 1)
    [article] = articles()
    assert (article.title, article.summary_text) == ("Seconda", "Nuovo.")
    assert article.digest_id == digest_id  # still the digest that sent it: never sent again
    assert article.published_at == posted  # the first date stays


def test_a_redated_item_is_not_new_nor_updated(feed_server, add_feed_row, poll, articles):
    item = {"guid": "g1", "link": "https://prove.example/1", "date": _hours_ago(30)}
    add_feed_row(feed_server.add("/f.xml", rss(item)))
    poll()
    first = articles()[0]
    feed_server.add("/f.xml", rss({**item, "date": _hours_ago(0.5)}))
    [result] = poll()
    assert (result.new, result.updated) == (0, 0)
    assert articles()[0].published_at == first.published_at
    assert articles()[0].updated_at == first.updated_at


def test_no_date_means_the_time_it_was_found(feed_server, add_feed_row, poll, articles):
    add_feed_row(feed_server.add("/f.xml", rss({"link": "https://prove.example/1"})))
    before = utcnow()
    poll()
    article = articles()[0]
    assert article.published_at == article.found_at
    assert before - timedelta(seconds=1) <= article.found_at <= utcnow()
    assert article.published_at.tzinfo is None


def test_a_post_dated_item_counts_from_when_it_was_found(feed_server, add_feed_row, poll, articles):
    add_feed_row(feed_server.add("/f.xml", rss({"link": "https://prove.example/1", "date": _hours_ago(-24 * 30)})))
    poll()
    article = articles()[0]
    assert article.published_at == article.found_at


def test_first_fetch_keeps_only_the_last_days(feed_server, add_feed_row, poll, articles, feed_row):
    recent = {"guid": "recent", "link": "https://prove.example/r", "date": _hours_ago(24 * 3)}
    old = {"guid": "old", "link": "https://prove.example/o", "date": _hours_ago(24 * 30)}
    undated = {"guid": "undated", "link": "https://prove.example/u"}
    feed_id = add_feed_row(feed_server.add("/f.xml", rss(recent, old, undated)))
    [result] = poll(FIRST_FETCH_DAYS=7)
    assert (result.new, result.skipped) == (2, 1)
    assert sorted(a.dedup_key for a in articles()) == ["recent", "undated"]
    # Later polls do not let the history in either.
    newer = {"guid": "newer", "link": "https://prove.example/n", "date": _hours_ago(1)}
    feed_server.add("/f.xml", rss(newer, recent, old, undated))
    assert poll(FIRST_FETCH_DAYS=7)[0].new == 1
    assert "old" not in {a.dedup_key for a in articles()}
    keep_since = feed_row(feed_id).keep_since
    assert keep_since is not None and utcnow() - keep_since > timedelta(days=6.9)


def test_the_history_window_is_configurable(feed_server, add_feed_row, poll):
    old = {"guid": "old", "link": "https://prove.example/o", "date": _hours_ago(24 * 30)}
    add_feed_row(feed_server.add("/f.xml", rss(old)))
    assert poll(FIRST_FETCH_DAYS=60)[0].new == 1


def test_the_same_article_in_two_feeds_is_kept_once(feed_server, add_feed_row, poll, articles):
    main = rss({"guid": "main-1", "link": "https://prove.example/storia?utm_source=home"})
    section = rss({"guid": "tech-77", "link": "https://PROVE.example/storia#top"})
    add_feed_row(feed_server.add("/main.xml", main))
    add_feed_row(feed_server.add("/tech.xml", section))
    results = poll(FEED_CONCURRENCY=1)
    assert sorted(r.new for r in results) == [0, 1]
    assert len(articles()) == 1


def test_categories_map_to_the_configured_topics(feed_server, add_feed_row, poll, articles):
    items: list[dict[str, Any]] = [
        {"guid": "1", "link": "https://p.example/1", "categories": ["Tecnologia > Intelligenza artificiale"]},
        {"guid": "2", "link": "https://p.example/2", "categories": ["Cybersecurity"]},
        {"guid": "3", "link": "https://p.example/3", "categories": ["SVILUPPO WEB"]},
        {"guid": "4", "link": "https://p.example/4", "categories": ["Cucina", "Smartphone"]},
        {"guid": "5", "link": "https://p.example/5", "categories": ["GPU"]},
        {"guid": "6", "link": "https://p.example/6", "categories": ["Cucina"]},
        {"guid": "7", "link": "https://p.example/7"},
        {"guid": "8", "link": "https://p.example/8", "categories": ["Robotica"]},
    ]
    add_feed_row(feed_server.add("/f.xml", rss(*items)))
    topics = {"ai": {"it": "IA", "aliases": []}, "robots": {"it": "Robotica", "aliases": ["robot"]},
              "misc": {"it": "Varie", "aliases": []}}
    poll()
    assert [a.topic for a in articles()] == ["ai", "security", "web", "mobile", "hardware", "other", "other", "other"]
    add_feed_row(feed_server.add("/g.xml", rss({"guid": "9", "link": "https://p.example/9", "categories": ["Robotica"]},
                                               {"guid": "10", "link": "https://p.example/10"})))
    poll(TOPICS=topics, FALLBACK_TOPIC="misc")
    assert [a.topic for a in articles()][-2:] == ["robots", "misc"]


def test_control_characters_never_reach_the_database(feed_server, add_feed_row, poll, articles):
    # Raw control bytes make the XML malformed; the tolerant parser keeps the
    # item, and PostgreSQL would refuse a NUL in a text column.
    body = rss({"guid": "c\x01tl", "link": "https://p.example/c", "title": "Tito\x00lo\x08", "text": "te\x00sto"})
    add_feed_row(feed_server.add("/f.xml", body))
    [result] = poll()
    assert result.ok, result.line()
    article = articles()[0]
    assert (article.title, article.summary_text, article.dedup_key) == ("Titolo", "testo", "ctl")


def test_long_values_fit_their_columns(feed_server, add_feed_row, poll, articles):
    long_guid = "g" * 3000
    add_feed_row(feed_server.add("/f.xml", rss({"guid": long_guid, "link": "https://p.example/l",
                                                "title": "parola " * 400})))
    [result] = poll()
    assert result.ok, result.line()
    article = articles()[0]
    assert article.dedup_key.startswith("sha256:") and len(article.dedup_key) < 100
    assert len(article.title) <= 300
    feed_server.add("/f.xml", rss({"guid": long_guid, "link": "https://p.example/l", "title": "parola " * 400},
                                  build="x"))
    assert poll()[0].new == 0  # the hashed key still matches
