"""Per-IP and per-account rate limits, with ``limits`` and a lean in-process storage.

``RateLimits`` (one per app, ``rate_limits()``) counts fixed-window limits
written in the usual notation (``10/minute;100/hour``) on the storage named
by ``RATELIMIT_STORAGE_URI``; ``RATELIMIT_ENABLED`` turns them all off. The
signup routes and the admin login call it directly: Flask-Limiter's
per-request bookkeeping, which ran before every request of the app, cost
more than the database's work on the signup path (bench/signup.py), and
these three limits need none of its machinery.

The default storage, ``mailer-memory://``:

``limits``' own ``memory://`` storage expires its keys from a
``threading.Timer`` that it starts again every 10 ms while requests arrive:
under a signup burst every gunicorn worker creates about a hundred threads a
second, which cost a quarter of the signup path's throughput in
``bench/signup.py``. The fixed-window strategy
needs no timer: a counter past its window is simply read as zero. This
storage does exactly that, and drops the expired counters in one sweep at
most once a minute, so memory stays bounded by the addresses of the last
window.

Counters are per process, as with ``memory://``; set
``RATELIMIT_STORAGE_URI = "redis://..."`` in ``instance/config.py`` (and install
the ``redis`` package) to share them between workers.
Only the fixed-window strategy uses it (the one ``RateLimits`` uses).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from flask import Flask, current_app
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

SCHEME = "mailer-memory"
EXTENSION = "mailer.ratelimits"
SWEEP_INTERVAL = 60.0  # seconds between two sweeps of the expired counters


class LeanMemoryStorage(Storage):
    """Fixed-window counters in a dict, expired lazily: no background thread."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        """An empty storage; ``uri`` is ``mailer-memory://`` (nothing to configure)."""
        # key -> [hits, expiry as time.time()]
        self.counters: dict[str, list[float]] = {}
        self.lock = threading.Lock()  # threaded servers (gthread, the dev server) share one storage
        self.next_sweep = time.time() + SWEEP_INTERVAL
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Nothing here raises a storage error of its own."""
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Count ``amount`` hits on ``key``; a new window lasts ``expiry`` seconds."""
        now = time.time()
        with self.lock:
            if now >= self.next_sweep:
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

    def _sweep(self, now: float) -> None:
        """Drop the counters whose window is over (the caller holds the lock)."""
        for key in [key for key, entry in self.counters.items() if entry[1] <= now]:
            del self.counters[key]
        self.next_sweep = now + SWEEP_INTERVAL


class RateLimits:
    """Fixed-window limits of one app on its configured storage."""

    def __init__(self, app: Flask) -> None:
        """Read ``RATELIMIT_ENABLED`` and ``RATELIMIT_STORAGE_URI``."""
        self.enabled = bool(app.config.get("RATELIMIT_ENABLED", True))
        storage = storage_from_string(str(app.config.get("RATELIMIT_STORAGE_URI") or f"{SCHEME}://"))
        self.strategy = FixedWindowRateLimiter(storage)
        self._parsed: dict[str, list[RateLimitItem]] = {}

    def _items(self, limit: str) -> list[RateLimitItem]:
        items = self._parsed.get(limit)
        if items is None:
            items = self._parsed[limit] = parse_many(limit)
        return items

    def hit(self, limit: str, scope: str, key: str) -> int | None:
        """Count one hit of ``key``; None while within ``limit``, else the seconds to wait."""
        if not self.enabled:
            return None
        for item in self._items(limit):
            if not self.strategy.hit(item, scope, key):
                return self._wait(item, scope, key)
        return None

    def test(self, limit: str, scope: str, key: str) -> int | None:
        """Like ``hit``, without counting: would one more hit still be allowed?"""
        if not self.enabled:
            return None
        for item in self._items(limit):
            if not self.strategy.test(item, scope, key):
                return self._wait(item, scope, key)
        return None

    def _wait(self, item: RateLimitItem, scope: str, key: str) -> int:
        reset = self.strategy.get_window_stats(item, scope, key).reset_time
        return max(1, math.ceil(reset - time.time()))


def init_app(app: Flask) -> None:
    """Give the app its ``RateLimits``."""
    app.extensions[EXTENSION] = RateLimits(app)


def rate_limits() -> RateLimits:
    """The current app's ``RateLimits``."""
    limits: RateLimits = current_app.extensions[EXTENSION]
    return limits
