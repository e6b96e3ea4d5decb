"""The feed list: configured feeds, and what the admin adds, disables, enables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.feeds import FeedError, add_feed, set_feed_enabled, sync_configured_feeds
from mailer.models import Feed, utcnow


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/feed.xml",  # loopback is fine: operators configure feeds
    "https://news.example.it/rss",
    "http://[::1]/feed",
    "  https://padded.example/feed  ",
])
def test_add_feed_accepts_any_http_host(session, url):
    feed = add_feed(session, url)
    session.commit()
    assert (feed.url, feed.source, feed.enabled) == (url.strip(), "admin", True)


@pytest.mark.parametrize(("url", "reason"), [
    ("", "enter the feed's URL"),
    ("ftp://files.example/feed", "only http:// and https://"),
    ("javascript:alert(1)", "only http:// and https://"),
    ("file:///etc/passwd", "only http:// and https://"),
    ("news.example.it/rss", "only http:// and https://"),
    ("http:///path-only", "no host name"),
    ("http://a.example/with space", "spaces"),
    ("http://a.example:99999/", "not a valid URL"),
    ("https://a.example/" + "x" * 2000, "longer than"),
])
def test_add_feed_refuses_bad_urls_clearly(session, url, reason):
    with pytest.raises(FeedError, match=reason) as caught:
        add_feed(session, url)
    assert isinstance(caught.value, ValueError)


def test_add_feed_refuses_a_duplicate(session):
    add_feed(session, "https://news.example.it/rss")
    with pytest.raises(FeedError, match="already"):
        add_feed(session, "https://news.example.it/rss")


def test_sync_adds_configured_feeds_once_and_respects_the_admin(session):
    added = sync_configured_feeds(session, ["https://a.example/rss", "https://b.example/rss", "https://a.example/rss"])
    assert [(f.url, f.source) for f in added] == [
        ("https://a.example/rss", "config"), ("https://b.example/rss", "config")]
    set_feed_enabled(session, added[0].id, False)
    assert sync_configured_feeds(session, ["https://a.example/rss", "https://b.example/rss"]) == []
    assert session.scalar(select(Feed.enabled).where(Feed.url == "https://a.example/rss")) is False


def test_sync_skips_a_bad_url(session, caplog):
    assert [f.url for f in sync_configured_feeds(session, ["gopher://x.example/", "https://ok.example/"])] == \
        ["https://ok.example/"]
    assert "gopher://x.example/" in caplog.text


def test_set_feed_enabled(session):
    feed = add_feed(session, "https://a.example/rss")
    feed.keep_since = utcnow() - timedelta(days=400)
    feed.consecutive_failures = 9
    assert set_feed_enabled(session, feed.id, False).enabled is False
    assert feed.keep_since < utcnow() - timedelta(days=399)  # disabling changes nothing else
    set_feed_enabled(session, feed.id, True, {"FIRST_FETCH_DAYS": 7})
    assert feed.enabled is True
    # Back on: the month it was off does not flood the next digest.
    assert utcnow() - timedelta(days=7, minutes=1) < feed.keep_since < utcnow() - timedelta(days=6)
    assert feed.consecutive_failures == 0


def test_set_feed_enabled_unknown_feed(session):
    with pytest.raises(FeedError, match="no feed"):
        set_feed_enabled(session, 12345, True)
