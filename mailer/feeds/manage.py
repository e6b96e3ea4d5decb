"""The feed list: feeds from ``MAILER_FEEDS``, feeds the admin adds or disables.

Any http(s) host is accepted, loopback and private addresses included:
only operators (the configuration, the admin) name feeds, never readers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.feeds.urls import MAX_URL_LENGTH
from mailer.models import Feed, utcnow

log = logging.getLogger("mailer.feeds")


class FeedError(ValueError):
    """A feed cannot be added or changed; the message says why, for the admin."""


def validate_feed_url(url: str) -> str:
    """``url`` stripped, if it is an http(s) URL with a host; raise FeedError."""
    url = (url or "").strip()
    if not url:
        raise FeedError("enter the feed's URL")
    if len(url) > MAX_URL_LENGTH:
        raise FeedError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise FeedError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise FeedError(f"not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise FeedError("only http:// and https:// feeds can be fetched")
    if not parts.hostname:
        raise FeedError("the URL has no host name")
    return url


def sync_configured_feeds(session: Session, urls: Iterable[str]) -> list[Feed]:
    """Add a Feed (source "config") for each URL of ``MAILER_FEEDS`` not yet known.

    Existing feeds are left alone: one the admin disabled stays disabled.
    Returns the feeds added (flushed, not committed).
    """
    wanted: list[str] = []
    for url in urls:
        try:
            wanted.append(validate_feed_url(url))
        except FeedError as exc:  # MAILER_FEEDS is checked at start; this is a programmatic list
            log.warning("ignoring configured feed %r: %s", url, exc)
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return []
    known = set(session.scalars(select(Feed.url).where(Feed.url.in_(wanted))))
    added = [Feed(url=url, source="config", enabled=True) for url in wanted if url not in known]
    session.add_all(added)
    session.flush()
    return added


def add_feed(session: Session, url: str) -> Feed:
    """Add a feed from the admin; raise FeedError for a bad or already listed URL."""
    url = validate_feed_url(url)
    if session.scalar(select(Feed.id).where(Feed.url == url)) is not None:
        raise FeedError("this feed is already in the list")
    feed = Feed(url=url, source="admin", enabled=True)
    session.add(feed)
    session.flush()
    return feed


def set_feed_enabled(session: Session, feed_id: int, enabled: bool, config: Mapping[str, Any] | None = None) -> Feed:
    """Enable or disable a feed; raise FeedError if there is no such feed.

    Re-enabling moves the feed's history window to now: a feed switched off
    for a month must not bring that month into the next digest at once.
    """
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise FeedError(f"no feed with id {feed_id}")
    if enabled and not feed.enabled:
        if config is None and has_app_context():
            config = current_app.config
        days = int((config or {}).get("FIRST_FETCH_DAYS", 7))
        feed.keep_since = utcnow() - timedelta(days=days)
        feed.consecutive_failures = 0
    feed.enabled = enabled
    session.flush()
    return feed


def failure_threshold(config: Mapping[str, Any]) -> int:
    """Consecutive failures after which a feed is flagged (``FEED_FAILURE_ALERT``)."""
    return max(1, int(config.get("FEED_FAILURE_ALERT", 5)))


def is_flagged(feed: Feed, config: Mapping[str, Any]) -> bool:
    """True when the enabled ``feed`` failed ``FEED_FAILURE_ALERT`` times in a row."""
    return feed.enabled and (feed.consecutive_failures or 0) >= failure_threshold(config)


def flagged_feeds(session: Session, config: Mapping[str, Any]) -> list[Feed]:
    """The feeds to show the operator: enabled, failing for FEED_FAILURE_ALERT polls in a row."""
    return list(session.scalars(
        select(Feed)
        .where(Feed.enabled, Feed.consecutive_failures >= failure_threshold(config))
        .order_by(Feed.consecutive_failures.desc(), Feed.id)
    ))
