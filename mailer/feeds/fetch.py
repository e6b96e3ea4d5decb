"""Download one feed: bounded in time, size and redirects, conditional.

Feeds in the wild hang, drip bytes forever, send gigabytes or redirect in
circles; none of that may hold ``feeds fetch``. Every request runs inside one
overall budget (``FEED_TIMEOUT`` seconds, for all redirects and the whole
body), the body is streamed and cut at ``FEED_MAX_BYTES`` (after gzip
decoding, so a compressed bomb is caught too), and redirects are followed by
hand so that each hop is checked to be http(s) and a permanent move is
seen. A server that answers 429 or 503 may say how long to stay away
(``Retry-After``): the wait is read here, at most a day.

Every connection goes through ``mailer.netguard``: only public addresses, or
networks of ``FEED_ALLOW_NETWORKS``, on every hop. Whatever fails before a
server answers in HTTP (refused, reset, filtered, timed out, not HTTP) gives
one and the same line, so that the errors cannot map the ports of a host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from mailer import netguard
from mailer.feeds.urls import http_url

log = logging.getLogger("mailer.feeds")
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = timedelta(hours=24)  # a longer wait is a day: the feed is not forgotten
USER_AGENT = "NewsletterMailer/0.1 (feed fetcher; +{base_url})"
ALLOW_SETTING = "MAILER_FEED_ALLOW_NETWORKS"
ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
          "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")


class FetchError(Exception):
    """The feed could not be downloaded; ``reason`` is one line for the operator.

    ``retry_at``: until when the server asked us to stay away (429 or 503
    with a readable ``Retry-After``; naive UTC, as the models keep time), else None.
    """

    def __init__(self, reason: str, retry_at: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_at = retry_at


@dataclass(frozen=True)
class FetchSettings:
    """The limits of a fetch, read once from the configuration."""

    budget: float
    max_bytes: int
    user_agent: str
    concurrency: int
    allowed: tuple[netguard.Network, ...] = ()  # networks reachable although not public

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FetchSettings:
        """Settings from ``FEED_TIMEOUT``, ``FEED_MAX_BYTES``, ``FEED_CONCURRENCY``, ``BASE_URL``,
        ``FEED_ALLOW_NETWORKS``."""
        return cls(
            budget=float(config["FEED_TIMEOUT"]),
            max_bytes=int(config["FEED_MAX_BYTES"]),
            user_agent=USER_AGENT.format(base_url=config["BASE_URL"]),
            concurrency=max(1, int(config["FEED_CONCURRENCY"])),
            allowed=netguard.parse_networks(config["FEED_ALLOW_NETWORKS"]),
        )


@dataclass(frozen=True)
class Page:
    """A downloaded feed (``not_modified``: the server answered 304).

    ``url`` is where it was found, after every redirect; ``moved_to`` is
    where the permanent redirects (301, 308) from the asked URL lead, up to
    the first temporary one, or None if the first was temporary or none.
    """

    url: str
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    not_modified: bool = False
    moved_to: str | None = None


def open_client(settings: FetchSettings) -> httpx.AsyncClient:
    """A client for a round of fetches; redirects are followed by ``fetch_page``."""
    # Per-operation timeouts back up the overall budget; connecting gets a
    # share of it so a black-holed host fails fast enough to say so.
    timeout = httpx.Timeout(settings.budget, connect=min(10.0, settings.budget))
    limits = httpx.Limits(max_connections=settings.concurrency * 2, max_keepalive_connections=0)
    return httpx.AsyncClient(
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,  # no proxy from the environment: the guard must see the real destination
        transport=netguard.guarded_transport(settings.allowed, ALLOW_SETTING, limits),
    )


async def fetch_page(client: httpx.AsyncClient, url: str, settings: FetchSettings, *,
                     etag: str | None = None, last_modified: str | None = None) -> Page:
    """Download ``url`` within the budget; raise FetchError with the reason."""
    conditional = {}
    if etag:
        conditional["If-None-Match"] = etag
    if last_modified:
        conditional["If-Modified-Since"] = last_modified
    hop = _Hop(url)
    try:
        async with asyncio.timeout(settings.budget):
            return await _follow(client, url, conditional, settings, hop)
    except netguard.GuardError as exc:
        redirected = f", redirected to {hop.url[:200]}" if hop.url != url else ""
        raise FetchError(f"{exc}{redirected}") from None
    except (TimeoutError, httpx.TransportError) as exc:
        if not hop.answered:
            # The cause stays in the server's own log (DEBUG), out of the lines others read.
            log.debug("no HTTP answer from %s: %s: %s", hop.url, type(exc).__name__, _describe(exc))
            raise FetchError(unreachable(hop.url)) from None
        if isinstance(exc, TimeoutError | httpx.TimeoutException):
            raise FetchError(f"timed out after {settings.budget:g} s") from None
        raise FetchError(f"{type(exc).__name__}: {_describe(exc)}") from None
    except httpx.DecodingError:
        raise FetchError("the server sent a body that cannot be decoded (bad gzip/deflate)") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {_describe(exc)}") from None


def unreachable(url: str) -> str:
    """The one line for every failure before an HTTP answer: no port-scan oracle.

    Refused, reset, filtered (timed out), or a service that does not speak
    HTTP: told apart, they would map which ports of a host are open.
    """
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"could not connect to {host}{port}: no HTTP answer (refused, unreachable, timed out or not HTTP)"


@dataclass
class _Hop:
    """The URL being requested, and whether its server has answered in HTTP yet."""

    url: str
    answered: bool = False


async def _follow(client: httpx.AsyncClient, url: str, conditional: dict[str, str],
                  settings: FetchSettings, hop: _Hop) -> Page:
    """Send the request, following at most MAX_REDIRECTS http(s) redirects."""
    moved_to: str | None = None
    permanent = True  # every redirect so far was permanent
    for _attempt in range(MAX_REDIRECTS + 1):
        hop.url, hop.answered = url, False
        async with client.stream("GET", url, headers=conditional) as response:
            hop.answered = True
            status = response.status_code
            if status in REDIRECTS and "location" in response.headers:
                location = response.headers["location"]
                target = http_url(location, base=str(response.url))
                if target is None:
                    raise FetchError(f"redirected to a non-http(s) URL: {location[:200]}")
                if permanent and status in PERMANENT_REDIRECTS:
                    moved_to = target
                else:
                    permanent = False  # a move after a temporary hop is not the feed's own
                url = target
                continue
            if status == 304:
                return Page(url, b"", None, response.headers.get("etag"), response.headers.get("last-modified"),
                            not_modified=True, moved_to=moved_to)
            if status >= 400 or status < 200:
                raise FetchError(f"HTTP {status} {response.reason_phrase}".strip(), retry_at=_retry_at(response))
            body = await _read_capped(response, settings.max_bytes)
            return Page(url, body, response.headers.get("content-type"), response.headers.get("etag"),
                        response.headers.get("last-modified"), moved_to=moved_to)
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The decoded body, or FetchError as soon as it passes ``max_bytes``."""
    too_big = FetchError(f"larger than the {max_bytes:,}-byte limit (FEED_MAX_BYTES)")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big  # the compressed size already exceeds it: do not read at all
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_at(response: httpx.Response) -> datetime | None:
    """When a 429 or 503 ``response`` allows the next request (naive UTC), or None."""
    if response.status_code not in RETRY_AFTER_STATUSES:
        return None
    now = datetime.now(UTC)
    wait = retry_after(response.headers.get("retry-after"), now)
    return (now + wait).replace(tzinfo=None) if wait else None


def retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """The wait a ``Retry-After`` value asks for, at most MAX_RETRY_AFTER.

    Delta-seconds (``120``) or an HTTP-date (``Wed, 21 Oct 2026 07:28:00 GMT``,
    from ``now``, aware UTC); None when absent, unreadable, zero or past.
    """
    value = (value or "").strip()
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0")
        # More digits than a day's seconds need: the cap (and no huge int()).
        seconds = int(digits or "0") if len(digits) <= 6 else MAX_RETRY_AFTER.total_seconds()
        wait = timedelta(seconds=seconds)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000" or asctime: HTTP-dates are GMT
            when = when.replace(tzinfo=UTC)
        wait = when - (now or datetime.now(UTC))
    if wait <= timedelta(0):
        return None
    return min(wait, MAX_RETRY_AFTER)


def _describe(exc: BaseException) -> str:
    """A one-line description of a transport error (some have an empty message)."""
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__
