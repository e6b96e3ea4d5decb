"""Fetch -> parse -> sanitise -> articles: the first stage of the pipeline.

- ``fetch``: one feed over HTTP, bounded in time, size and redirects, public addresses only
  (``mailer.netguard``); Retry-After read.
- ``parse``: XML checked with defusedxml, then feedparser.
- ``sanitise``: nh3 allow-list, summaries cut at a word boundary, plain text.
- ``store``: entries -> Article rows, each real article kept once.
- ``topics``: categories -> the configured topics.
- ``poll``: every enabled feed, each stored and committed on its own.
- ``manage``: the feed list (``MAILER_FEEDS``, the admin).
- ``demo``: the bundled demo feed (blueprint ``bp``).
"""

from __future__ import annotations

from mailer.feeds.demo import bp
from mailer.feeds.manage import (
    FeedError,
    RefusedFeedAddress,
    add_feed,
    failure_threshold,
    flagged_feeds,
    is_flagged,
    set_feed_enabled,
    sync_configured_feeds,
    validate_feed_url,
)
from mailer.feeds.poll import FetchResult, fetch_all_feeds

__all__ = [
    "FeedError",
    "FetchResult",
    "RefusedFeedAddress",
    "add_feed",
    "bp",
    "failure_threshold",
    "fetch_all_feeds",
    "flagged_feeds",
    "is_flagged",
    "set_feed_enabled",
    "sync_configured_feeds",
    "validate_feed_url",
]
