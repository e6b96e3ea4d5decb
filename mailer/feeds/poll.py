"""Poll every enabled feed: fetch, parse, store, and record how it went.

Downloads run concurrently (``FEED_CONCURRENCY`` at a time, each within its
own ``FEED_TIMEOUT`` budget); each feed is then parsed and stored in its own
transaction, one at a time, so one broken feed loses nothing of the others
and a database error in one store is that feed's failure, not the round's.

- A feed whose server asked to wait (``Retry-After`` on 429/503) is not
  fetched before ``Feed.retry_after_at``: its result says "wait", not
  "FAILED".
- A permanent redirect (301/308) becomes the feed's URL after a successful
  fetch, unless another feed has that URL already or MAILER_FEEDS names the
  old one (the operator changes the configuration, not the poller: the
  result line says so).
- ``stop`` (Ctrl-C, SIGTERM) ends the downloads in progress at once and
  closes their connections; a feed being stored is finished first. Feeds
  not polled get no result and keep their state for the next poll.

Each feed's result is logged at DEBUG only: the caller prints or logs the
result lines (``feeds fetch`` on standard output, the scheduler in its log).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import threading
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailer.feeds.fetch import FetchError, FetchSettings, Page, fetch_page, open_client
from mailer.feeds.manage import failure_threshold
from mailer.feeds.parse import FeedParseError, parse_feed
from mailer.feeds.sanitise import plain
from mailer.feeds.store import store_entries
from mailer.models import Feed, utcnow

log = logging.getLogger("mailer.feeds")
T = TypeVar("T")
# How often a poll looks at the stop event (seconds).
STOP_CHECK_INTERVAL = 0.1


@dataclass
class FetchResult:
    """How one feed's poll went; ``line()`` is what ``feeds fetch`` prints."""

    url: str
    ok: bool
    new: int = 0
    updated: int = 0
    error: str | None = None
    not_modified: bool = False
    feed_id: int | None = None
    skipped: int = 0
    warning: str | None = None
    failures: int = 0  # consecutive failures, this one included
    flagged: bool = False  # reached FEED_FAILURE_ALERT: the operator should look
    moved: str | None = None  # a permanent redirect, and what became of the feed's URL
    retry_after_at: datetime | None = None  # the server's Retry-After: not polled before this
    waiting: bool = False  # not fetched: retry_after_at has not passed (not a failure)

    def line(self) -> str:
        """One line naming the feed and the result or the reason it failed."""
        until = f"{self.retry_after_at:%Y-%m-%d %H:%M:%S} UTC" if self.retry_after_at else ""
        if self.waiting:
            return f"wait   {self.url}: the server asked not to be polled before {until} (Retry-After)"
        if not self.ok:
            streak = f" ({self.failures} failures in a row)" if self.failures > 1 else ""
            flag = " [flagged: check or disable this feed]" if self.flagged else ""
            pause = f" (Retry-After: not polled before {until})" if until else ""
            return f"FAILED {self.url}: {self.error}{streak}{pause}{flag}"
        notes = "".join(f" ({note})" for note in (self.warning, self.moved) if note)
        if self.not_modified:
            return f"ok     {self.url}: not modified{notes}"
        return f"ok     {self.url}: {self.new} new, {self.updated} updated{notes}"


@dataclass(frozen=True)
class _Snapshot:
    """What a fetch needs of a Feed row, read before any network traffic."""

    id: int
    url: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None


def fetch_all_feeds(session_factory: sessionmaker[Session], config: Mapping[str, Any], *,
                    feed_ids: Iterable[int] | None = None,
                    stop: threading.Event | None = None) -> list[FetchResult]:
    """Poll every enabled feed (or those of ``feed_ids``); one result per feed, in id order.

    Feeds whose Retry-After has not passed are not fetched: their result is "wait".
    Once ``stop`` is set, downloads are abandoned: those feeds get no result.
    """
    now = utcnow()
    feeds: list[_Snapshot] = []
    waiting: list[FetchResult] = []
    with session_factory() as session:
        query = select(Feed).where(Feed.enabled).order_by(Feed.id)
        if feed_ids is not None:
            query = query.where(Feed.id.in_(list(feed_ids)))
        for f in session.scalars(query):
            if f.retry_after_at is not None and f.retry_after_at > now:
                waiting.append(FetchResult(f.url, ok=True, feed_id=f.id, retry_after_at=f.retry_after_at,
                                           waiting=True))
            else:
                feeds.append(_Snapshot(f.id, f.url, f.etag, f.last_modified, f.body_hash))
    for result in waiting:
        log.debug("feed %s: %s", result.url, result.line().split(": ", 1)[-1])
    polled = _run(_poll(feeds, session_factory, config, stop)) if feeds else []
    return sorted([*waiting, *polled], key=lambda r: r.feed_id or 0)


async def _poll(feeds: list[_Snapshot], factory: sessionmaker[Session],
                config: Mapping[str, Any], stop: threading.Event | None = None) -> list[FetchResult]:
    """Fetch concurrently, then settle (parse, store, record) one feed at a time."""
    settings = FetchSettings.from_config(config)
    downloads = asyncio.Semaphore(settings.concurrency)
    stores = asyncio.Lock()
    stopping = asyncio.Event()

    async def poll_one(feed: _Snapshot) -> FetchResult | None:
        page: Page | None = None
        error: FetchError | None = None
        async with downloads:
            if stopping.is_set():
                return None
            download = fetch_page(client, feed.url, settings, etag=feed.etag, last_modified=feed.last_modified)
            try:
                page = await _unless_stopped(download, stopping)
            except FetchError as exc:
                error = exc
            if page is None and error is None:
                return None  # stopped: this feed waits for the next poll
        async with stores:
            # In a thread: parsing a big feed must not stall the other downloads.
            return await asyncio.to_thread(_settle, factory, config, feed, page, error)

    watcher = asyncio.create_task(_watch(stop, stopping))
    try:
        async with open_client(settings) as client:  # closed on the way out: no connection outlives a stop
            results = await asyncio.gather(*(poll_one(feed) for feed in feeds))
    finally:
        watcher.cancel()
    return [result for result in results if result is not None]


async def _watch(stop: threading.Event | None, stopping: asyncio.Event) -> None:
    """Set ``stopping`` (this loop's event) soon after ``stop`` (another thread's) is set."""
    if stop is None:
        return
    while not stop.is_set():
        await asyncio.sleep(STOP_CHECK_INTERVAL)
    stopping.set()


async def _unless_stopped(work: Coroutine[Any, Any, T], stopping: asyncio.Event) -> T | None:
    """The result of ``work``, or None once ``stopping`` is set first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def _settle(factory: sessionmaker[Session], config: Mapping[str, Any], feed: _Snapshot,
            page: Page | None, fetch_error: FetchError | None) -> FetchResult:
    """Store a downloaded page, or record the failure; never raises for one feed's fault."""
    now = utcnow()
    error = fetch_error.reason if fetch_error else None
    if page is not None:
        try:
            return _store(factory, config, feed, page, now)
        except FeedParseError as exc:
            error = exc.reason
        except Exception as exc:  # one feed's bug must not cost the others
            log.exception("storing feed %s failed", feed.url)
            error = f"could not store it: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    retry_at = fetch_error.retry_at if fetch_error else None
    return _record_failure(factory, config, feed, error or "unknown error", now, retry_at)


def _store(factory: sessionmaker[Session], config: Mapping[str, Any], feed: _Snapshot, page: Page,
           now: datetime) -> FetchResult:
    """Parse and store ``page`` in one transaction; FeedParseError if it is not a feed."""
    body_hash = hashlib.sha256(page.body).hexdigest() if not page.not_modified else feed.body_hash
    unchanged = page.not_modified or body_hash == feed.body_hash
    parsed = None if unchanged else parse_feed(page.body, url=page.url, content_type=page.content_type)
    with factory() as session, session.begin():
        row = session.get(Feed, feed.id)
        if row is None:
            return FetchResult(feed.url, ok=False, error="the feed was removed meanwhile", feed_id=feed.id)
        result = FetchResult(feed.url, ok=True, feed_id=feed.id, not_modified=unchanged)
        if parsed is not None:
            report = store_entries(session, row, parsed.entries, config, now)
            result.new, result.updated, result.skipped = report.new, report.updated, report.skipped
            result.warning = parsed.warning
            row.title = plain(parsed.title, limit=500) or row.title
        if page.moved_to and page.moved_to != row.url:
            result.moved = _follow_move(session, row, page.moved_to, config)
        # A 200 replaces the validators (a server may stop sending them); a 304 may refresh them.
        if not page.not_modified or page.etag:
            row.etag = page.etag if page.etag and len(page.etag) <= 500 else None
        if not page.not_modified or page.last_modified:
            row.last_modified = page.last_modified if page.last_modified and len(page.last_modified) <= 100 else None
        row.body_hash = body_hash
        row.last_fetched_at = row.last_success_at = now
        row.consecutive_failures = 0
        row.last_error = row.last_error_at = row.retry_after_at = None
    log.debug("feed %s: %s", feed.url, result.line().split(": ", 1)[-1])
    return result


def _follow_move(session: Session, row: Feed, moved_to: str, config: Mapping[str, Any]) -> str:
    """Make ``moved_to`` (a permanent redirect) the feed's URL if nothing stands against it; say what was done."""
    configured = {url.strip() for url in config["FEEDS"] or ()}
    if row.url in configured:
        # The sync matches MAILER_FEEDS by URL: a new URL here would make it
        # add the old one again as a new feed (and disable this one).
        return f"moved permanently to {moved_to}: change it in MAILER_FEEDS"
    other = session.scalar(select(Feed.id).where(Feed.url == moved_to, Feed.id != row.id))
    if other is not None:
        return f"moved permanently to {moved_to}, the URL of feed {other}: its URL is kept"
    row.url = moved_to
    return f"moved permanently to {moved_to}: its URL is updated"


def _record_failure(factory: sessionmaker[Session], config: Mapping[str, Any], feed: _Snapshot,
                    reason: str, now: datetime, retry_at: datetime | None = None) -> FetchResult:
    """Record the failure on the feed (and the server's Retry-After); flag it at FEED_FAILURE_ALERT."""
    result = FetchResult(feed.url, ok=False, error=reason, feed_id=feed.id)
    threshold = failure_threshold(config)
    try:
        with factory() as session, session.begin():
            row = session.get(Feed, feed.id)
            if row is None:
                return result
            row.consecutive_failures = (row.consecutive_failures or 0) + 1
            row.last_error, row.last_error_at, row.last_fetched_at = reason, now, now
            row.retry_after_at = result.retry_after_at = retry_at
            result.failures = row.consecutive_failures
    except Exception:  # the database is down: still report the feed's failure
        log.exception("recording the failure of feed %s failed", feed.url)
        return result
    result.flagged = result.failures >= threshold
    if result.failures == threshold:
        log.warning("feed %s has failed %d times in a row (last: %s): flagged for the operator",
                    feed.url, result.failures, reason)
    else:
        log.debug("feed %s failed: %s", feed.url, result.line().split(": ", 1)[-1])
    return result


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion, also when called from inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
