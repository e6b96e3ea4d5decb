"""The feed list: feeds from ``MAILER_FEEDS``, feeds the admin adds or disables.

Any http(s) URL is listed, except that the admin's form refuses at once a
host that is a literal address outside the public internet and
``FEED_ALLOW_NETWORKS``; a host name is checked where it matters, at every
fetch (``mailer.netguard``), since its addresses can change after adding.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import netguard
from mailer.feeds.urls import MAX_URL_LENGTH
from mailer.models import Feed, FeedSource, utcnow

log = logging.getLogger("mailer.feeds")


class FeedError(ValueError):
    """A feed cannot be added or changed; the message says why, for the admin."""


class RefusedFeedAddress(FeedError):
    """The feed's host is a literal address that feeds may not reach (``address``)."""

    def __init__(self, address: netguard.IPAddress) -> None:
        self.address = address
        super().__init__(f"refused: {address} is not a public address (MAILER_FEED_ALLOW_NETWORKS)")


def check_feed_address(url: str, allowed: Iterable[netguard.Network | str]) -> None:
    """Raise RefusedFeedAddress if ``url``'s host is an address outside the public internet and ``allowed``."""
    address = netguard.literal_address(urlsplit(url).hostname or "")
    if address is not None and not netguard.permits(address, netguard.parse_networks(allowed)):
        raise RefusedFeedAddress(address)


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


def sync_configured_feeds(session: Session, urls: Iterable[str],
                          config: Mapping[str, Any] | None = None) -> list[Feed]:
    """Make the feeds of ``MAILER_FEEDS`` (source "config") follow ``urls``; return the feeds added.

    - A URL not yet known: a new feed, enabled. A known URL (the admin's feed
      too) is left alone: a config feed the admin disabled stays disabled.
    - An enabled config feed whose URL left the list: disabled (logged once,
      at INFO), its articles kept, and ``left_config_at`` says why.
    - That URL back in the list: the feed is enabled again, its history window
      moved to now as on re-enabling in the admin. Only what the list did is
      undone: a feed the admin disabled stays off until the admin enables it.
    - An empty list disables nothing: it is what an unset MAILER_FEEDS gives
      (production's default, where the admin keeps the list), and a lost
      environment must not switch every feed off. To stop them all, disable
      them in the admin.

    Changes are flushed, not committed.
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
    listed = set(wanted)
    for feed in session.scalars(select(Feed).where(Feed.source == FeedSource.CONFIG)):
        if feed.url in listed and feed.left_config_at is not None:
            feed.left_config_at = None
            if not feed.enabled:
                _switch_on(feed, config)
                log.info("feed %s is in MAILER_FEEDS again: enabled", feed.url)
        elif feed.url not in listed and feed.enabled and feed.left_config_at is None:
            # Once: if the admin enables it again, that choice stands.
            feed.enabled = False
            feed.left_config_at = utcnow()
            log.info("feed %s is no longer in MAILER_FEEDS: disabled (its articles stay)", feed.url)
    known = set(session.scalars(select(Feed.url).where(Feed.url.in_(wanted))))
    added = [Feed(url=url, source=FeedSource.CONFIG, enabled=True) for url in wanted if url not in known]
    session.add_all(added)
    session.flush()
    return added


def add_feed(session: Session, url: str, allowed: Iterable[netguard.Network | str] = ()) -> Feed:
    """Add a feed from the admin; raise FeedError for a bad, refused or already listed URL.

    ``allowed``: the networks feeds may reach although not public (``FEED_ALLOW_NETWORKS``).
    """
    url = validate_feed_url(url)
    check_feed_address(url, allowed)
    if session.scalar(select(Feed.id).where(Feed.url == url)) is not None:
        raise FeedError("this feed is already in the list")
    feed = Feed(url=url, source=FeedSource.ADMIN, enabled=True)
    session.add(feed)
    session.flush()
    return feed


def set_feed_enabled(session: Session, feed_id: int, enabled: bool, config: Mapping[str, Any] | None = None) -> Feed:
    """Enable or disable a feed; raise FeedError if there is no such feed.

    Re-enabling moves the feed's history window to now: a feed switched off
    for a month must not bring that month into the next digest at once.
    Disabling is the admin's own choice: the feed's URL coming back into
    MAILER_FEEDS does not undo it.
    """
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise FeedError(f"no feed with id {feed_id}")
    if enabled and not feed.enabled:
        _switch_on(feed, config)
    if not enabled:
        feed.left_config_at = None
    feed.enabled = enabled
    session.flush()
    return feed


def _switch_on(feed: Feed, config: Mapping[str, Any] | None) -> None:
    """Enable ``feed`` with a fresh history window (FIRST_FETCH_DAYS back) and no failure streak."""
    days = int((config if config is not None else current_app.config)["FIRST_FETCH_DAYS"])
    feed.keep_since = utcnow() - timedelta(days=days)
    feed.consecutive_failures = 0
    feed.enabled = True


def failure_threshold(config: Mapping[str, Any]) -> int:
    """Consecutive failures after which a feed is flagged (``FEED_FAILURE_ALERT``)."""
    return max(1, int(config["FEED_FAILURE_ALERT"]))


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
