"""A lean in-process storage for Flask-Limiter's counters: ``mailer-memory://``.

``limits``' own ``memory://`` storage expires its keys from a
``threading.Timer`` that it starts again every 10 ms while requests arrive:
under a signup burst every gunicorn worker creates about a hundred threads a
second, which cost a quarter of the signup path's throughput in
``bench/signup.py``. The fixed-window strategy (Flask-Limiter's default)
needs no timer: a counter past its window is simply read as zero. This
storage does exactly that, and drops the expired counters in one sweep at
most once a minute, so memory stays bounded by the addresses of the last
window.

Counters are per process, as with ``memory://``; set
``MAILER_RATELIMIT_STORAGE_URI=redis://...`` to share them between workers.
Only the fixed-window strategy is supported (``RATELIMIT_STRATEGY``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from limits.storage import Storage

SCHEME = "mailer-memory"
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
