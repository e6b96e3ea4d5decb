"""Per-IP and per-account rate limits, counted with ``limits``.

``RateLimits`` (one per app, ``rate_limits()``) counts fixed-window limits
written in the usual notation (``10/minute;100/hour``); ``RATELIMIT_ENABLED``
turns them all off. The signup routes and the admin login call it directly:
Flask-Limiter's per-request bookkeeping, which ran before every request of
the app, cost more than the database's work on the signup path
(bench/signup.py), and these three limits need none of its machinery.

Where the counters live (``MAILER_RATELIMIT_STORAGE``, the ``RATELIMIT_STORAGE`` setting;
``RATELIMIT_STORAGE_URI`` in ``instance/config.py`` is its older name and wins):

- ``database`` (the default): the ``rate_counters`` table of the app's own
  database, one upsert a hit. Every gunicorn worker, and every host on the
  same database, shares one budget per client: a limit of 10 a minute is 10,
  not 10 per worker.
- ``memory``: a dict in each process (``LeanMemoryStorage``), the fastest,
  right for a single process; behind N workers a client gets N budgets.
- any storage URI of ``limits`` whose client library is installed
  (``redis://...`` with the ``redis`` package), for a site that runs one.

``limits``' own ``memory://`` storage expires its keys from a
``threading.Timer`` that it starts again and again while requests arrive:
under a signup burst every gunicorn worker creates threads by the hundred,
a large share of the signup path's throughput (bench/FIGURES.md). The
fixed-window strategy needs no timer: a counter past its window is simply
read as zero. Both storages here do that, and drop the expired counters in
one sweep at most once a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from mailer.ratecounters import DatabaseStorage, LazyStorage

SCHEME = "mailer-memory"
# The names an operator writes; anything else is a ``limits`` storage URI.
DATABASE, MEMORY = "database", "memory"
EXTENSION = "mailer.ratelimits"


class LeanMemoryStorage(LazyStorage):
    """Fixed-window counters in a dict, expired lazily: no background thread."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        """An empty storage; ``uri`` is ``mailer-memory://`` (nothing to configure)."""
        # key -> [hits, expiry as time.time()]
        self.counters: dict[str, list[float]] = {}
        self.lock = threading.Lock()  # threaded servers (gthread, the dev server) share one storage
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Count ``amount`` hits on ``key``; a new window lasts ``expiry`` seconds."""
        now = time.time()
        with self.lock:
            if self.sweep_due(now):
                self._sweep(now)
            entry = self.counters.get(key)
            if entry is None or entry[1] <= now:
                entry = self.counters[key] = [0, now + expiry]
            entry[0] += amount
            return int(entry[0])

    def get(self, key: str) -> int:
        """The hits of ``key`` in its current window (0 once it has expired)."""
        entry = self.counters.get(key)
        return int(entry[0]) if entry is not None and entry[1] > time.time() else 0

    def get_expiry(self, key: str) -> float:
        """When the window of ``key`` ends (now if it has none)."""
        entry = self.counters.get(key)
        return entry[1] if entry is not None else time.time()

    def check(self) -> bool:
        """Always healthy: it lives in this process."""
        return True

    def reset(self) -> int | None:
        """Forget every counter; the number forgotten."""
        with self.lock:
            count = len(self.counters)
            self.counters.clear()
        return count

    def clear(self, key: str) -> None:
        """Forget the counter of ``key``."""
        with self.lock:
            self.counters.pop(key, None)

    def release_all(self, keys: Sequence[str], now: float) -> None:
        """Take one hit back from each key whose window is still open."""
        with self.lock:
            for key in keys:
                entry = self.counters.get(key)
                if entry is not None and entry[1] > now and entry[0] > 0:
                    entry[0] -= 1

    def _sweep(self, now: float) -> None:
        """Drop the counters whose window is over (the caller holds the lock)."""
        for key in [key for key, entry in self.counters.items() if entry[1] <= now]:
            del self.counters[key]


def make_storage(app: Flask, name: str) -> Storage:
    """The storage that ``RATELIMIT_STORAGE`` names (see the module docstring)."""
    if name == DATABASE:
        from mailer.db import get_engine

        return DatabaseStorage(engine=lambda: get_engine(app))
    if name in (MEMORY, ""):
        return LeanMemoryStorage()
    storage = storage_from_string(name)
    if not isinstance(storage, Storage):  # config.py refuses the async+ schemes
        raise ValueError(f"not a synchronous storage: {name}")
    return storage


# What the key of the counters' hash is derived from SECRET_KEY for (no other use shares it).
PURPOSE = b"mailer.rate-counters"

# (limit, scope, key): "5/minute;20/hour", what is limited, who is counted.
Check = tuple[str, str, str]


@dataclass(frozen=True)
class Taken:
    """A check after ``RateLimits.take`` counted a hit on it."""

    hits: int  # in its fullest window, this hit included (0 with the limits off)
    wait: int | None  # seconds until it lets one more through; None while within the limit


class RateLimits:
    """Fixed-window limits of one app on its configured storage.

    On the database storage a check is one statement for all the windows of
    a limit (``DatabaseStorage.hit_all``), not one transaction per window.
    """

    def __init__(self, app: Flask) -> None:
        """Read ``RATELIMIT_ENABLED`` and ``RATELIMIT_STORAGE`` (``RATELIMIT_STORAGE_URI``, its older name)."""
        self.enabled = bool(app.config["RATELIMIT_ENABLED"])
        config = app.config
        storage = make_storage(app, str(config.get("RATELIMIT_STORAGE_URI") or config.get("RATELIMIT_STORAGE")
                                        or DATABASE))
        self.storage = storage
        self.strategy = FixedWindowRateLimiter(storage)
        # Every worker derives the same key from SECRET_KEY: they share one counter per client.
        self._key = hmac.digest(str(config["SECRET_KEY"]).encode("utf-8"), PURPOSE, hashlib.sha256)
        self._parsed: dict[str, list[RateLimitItem]] = {}

    def _items(self, limit: str) -> list[RateLimitItem]:
        """The windows of ``limit``, each once (``5/minute;5/minute`` is one window)."""
        items = self._parsed.get(limit)
        if items is None:
            items = self._parsed[limit] = list({item.key_for(): item for item in parse_many(limit)}.values())
        return items

    def hit(self, limit: str, scope: str, key: str) -> int | None:
        """Count one hit of ``key``; None while within ``limit``, else the seconds to wait."""
        return self._check(limit, scope, key, count=True)

    def test(self, limit: str, scope: str, key: str) -> int | None:
        """Like ``hit``, without counting: would one more hit still be allowed?"""
        return self._check(limit, scope, key, count=False)

    def _check(self, limit: str, scope: str, key: str, *, count: bool) -> int | None:
        """``hit`` (``count``) or ``test``: None while within ``limit``, else the seconds to wait."""
        if not self.enabled:
            return None
        client = self._client(key)
        if isinstance(self.storage, DatabaseStorage):
            return self._at_once(limit, scope, client, count=count)
        check = self.strategy.hit if count else self.strategy.test
        for item in self._items(limit):
            if not check(item, scope, client):
                return self._wait(item, scope, client)
        return None

    def _at_once(self, limit: str, scope: str, client: str, *, count: bool) -> int | None:
        """The database's way: every window of ``limit`` in one statement."""
        assert isinstance(self.storage, DatabaseStorage)
        items, now = self._items(limit), time.time()
        keys = [(item.key_for(scope, client), item.get_expiry()) for item in items]
        windows = self.storage.hit_all(keys, now) if count else self.storage.peek_all([k for k, _ in keys], now)
        # Counted: over the limit once past it; tested: once one more would be.
        over = [end for item, (hits, end) in zip(items, windows, strict=True)
                if hits > item.amount or (not count and hits >= item.amount)]
        return max(1, math.ceil(max(over) - now)) if over else None

    def _client(self, key: str) -> str:
        """Who is counted, as stored: a keyed hash, so the table holds no IP or typed address, and keys stay short.

        Keyed (HMAC under a key derived from SECRET_KEY): an unkeyed SHA-256 of
        an IPv4 address is reversed by hashing all 2**32 of them.
        """
        return hmac.digest(self._key, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hex()[:32]

    def _wait(self, item: RateLimitItem, scope: str, key: str) -> int:
        reset = self.strategy.get_window_stats(item, scope, key).reset_time
        return max(1, math.ceil(reset - time.time()))

    def take(self, checks: Sequence[Check]) -> list[Taken]:
        """Count one hit on each (limit, scope, key) at once, before the work they guard; each one's state.

        A slot is taken first and the caller decides after: N requests in
        parallel get hits 1..N, so those past a limit of 5 never reach the
        work (a test-then-hit would let all N see 0). On the database it is
        one statement for every window of every check.
        """
        if not self.enabled:
            return [Taken(0, None) for _ in checks]
        now = time.time()
        keyed = [[(item, item.key_for(scope, self._client(key))) for item in self._items(limit)]
                 for limit, scope, key in checks]
        if isinstance(self.storage, DatabaseStorage):
            windows = self.storage.hit_all([(k, item.get_expiry()) for each in keyed for item, k in each], now)
        else:
            windows = [(self.storage.incr(k, item.get_expiry()), self.storage.get_expiry(k))
                       for each in keyed for item, k in each]
        taken, position = [], 0
        for each in keyed:
            states = windows[position:position + len(each)]
            position += len(each)
            over = [end for (item, _k), (hits, end) in zip(each, states, strict=True) if hits > item.amount]
            taken.append(Taken(max(hits for hits, _end in states),
                               max(1, math.ceil(max(over) - now)) if over else None))
        return taken

    def give_back(self, checks: Sequence[Check]) -> None:
        """Undo one hit that ``take`` counted on each check (the work turned out not to count)."""
        if not self.enabled:
            return
        keys = [(item.key_for(scope, self._client(key)), item.get_expiry())
                for limit, scope, key in checks for item in self._items(limit)]
        if isinstance(self.storage, (DatabaseStorage, LeanMemoryStorage)):
            self.storage.release_all([k for k, _expiry in keys], time.time())
            return
        for k, expiry in keys:  # another storage (Redis): not atomic, a hit is a hit
            if self.storage.get(k) > 0:
                self.storage.incr(k, expiry, amount=-1)


def client_source(raw: str | None) -> str:
    """Who a per-client limit counts: the address; an IPv6 one by its /64, what one home or host is given.

    Counted by the address, an IPv6 client would rotate through the 2**64
    addresses of its own network and never meet a limit.
    """
    try:
        address = ipaddress.ip_address(raw or "")
    except ValueError:
        return raw or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def init_app(app: Flask) -> None:
    """Give the app its ``RateLimits``."""
    app.extensions[EXTENSION] = RateLimits(app)


def rate_limits() -> RateLimits:
    """The current app's ``RateLimits``."""
    limits: RateLimits = current_app.extensions[EXTENSION]
    return limits
