"""The feed list: configured feeds, and what the admin adds, disables, enables."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.feeds import FeedError, RefusedFeedAddress, add_feed, set_feed_enabled, sync_configured_feeds
from mailer.models import Feed, utcnow


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/feed.xml",  # loopback where the allow list has it
    "https://news.example.it/rss",
    "http://[::1]/feed",
    "  https://padded.example/feed  ",
    "https://93.184.215.14/feed",
])
def test_add_feed_accepts_any_http_host(session, url):
    feed = add_feed(session, url, ["127.0.0.0/8", "::1/128"])
    session.commit()
    assert (feed.url, feed.source, feed.enabled) == (url.strip(), "admin", True)


@pytest.mark.parametrize(("url", "address"), [
    ("http://127.0.0.1:8080/feed.xml", "127.0.0.1"),
    ("http://10.0.0.5/feed", "10.0.0.5"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://[::1]:5432/", "::1"),
    ("http://[::ffff:127.0.0.1]/feed", "::ffff:7f00:1"),
    ("http://0.0.0.0:5000/feed", "0.0.0.0"),
])
def test_add_feed_refuses_a_literal_internal_address(session, url, address):
    with pytest.raises(RefusedFeedAddress) as refused:
        add_feed(session, url)
    assert str(refused.value) == f"refused: {address} is not a public address (MAILER_FEED_ALLOW_NETWORKS)"
    session.rollback()
    assert session.scalar(select(Feed.id)) is None


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


def _feed(session, url):
    session.expire_all()
    return session.scalar(select(Feed).where(Feed.url == url))


def test_sync_disables_a_config_feed_that_left_the_list_once(session, caplog):
    caplog.set_level(logging.INFO, logger="mailer.feeds")
    sync_configured_feeds(session, ["https://a.example/rss", "https://b.example/rss"])
    add_feed(session, "https://admin.example/rss")
    assert sync_configured_feeds(session, ["https://a.example/rss"]) == []
    dropped = _feed(session, "https://b.example/rss")
    assert dropped.enabled is False and dropped.left_config_at is not None
    assert _feed(session, "https://a.example/rss").enabled is True
    assert _feed(session, "https://admin.example/rss").enabled is True  # the admin's feeds are not the list's
    sync_configured_feeds(session, ["https://a.example/rss"])
    said = [r for r in caplog.records if "b.example" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in said] == [
        (logging.INFO, "feed https://b.example/rss is no longer in MAILER_FEEDS: disabled (its articles stay)")]


def test_a_url_back_in_the_list_enables_its_feed_again(session):
    sync_configured_feeds(session, ["https://a.example/rss", "https://b.example/rss"])
    sync_configured_feeds(session, ["https://a.example/rss"])
    back = _feed(session, "https://b.example/rss")
    back.keep_since = utcnow() - timedelta(days=400)
    back.consecutive_failures = 4
    assert sync_configured_feeds(session, ["https://a.example/rss", "https://b.example/rss"],
                                 {"FIRST_FETCH_DAYS": 7}) == []  # the same row, not a new one
    back = _feed(session, "https://b.example/rss")
    assert (back.enabled, back.left_config_at, back.consecutive_failures) == (True, None, 0)
    # The months it was out of the list do not flood the next digest.
    assert back.keep_since > utcnow() - timedelta(days=7, minutes=1)


def test_the_admins_disable_outlives_the_list(session):
    [a, b] = sync_configured_feeds(session, ["https://a.example/rss", "https://b.example/rss"])
    set_feed_enabled(session, a.id, False)  # while configured
    sync_configured_feeds(session, ["https://c.example/rss"])  # both leave the list
    set_feed_enabled(session, b.id, False)  # the admin confirms: b stays off
    sync_configured_feeds(session, ["https://a.example/rss", "https://b.example/rss"])
    assert (_feed(session, a.url).enabled, _feed(session, b.url).enabled) == (False, False)


def test_the_admin_may_enable_a_feed_that_left_the_list(session):
    [a] = sync_configured_feeds(session, ["https://a.example/rss"])
    sync_configured_feeds(session, ["https://c.example/rss"])
    set_feed_enabled(session, a.id, True, {"FIRST_FETCH_DAYS": 7})
    sync_configured_feeds(session, ["https://c.example/rss"])
    assert _feed(session, a.url).enabled is True  # the list disabled it once; the admin's choice stands


def test_an_empty_list_disables_nothing(session):
    sync_configured_feeds(session, ["https://a.example/rss"])
    assert sync_configured_feeds(session, []) == []
    assert _feed(session, "https://a.example/rss").enabled is True
