"""``MAILER_SEND_RATE``: at most so many messages a second, as a token bucket.

One bucket per run, shared by the connections of this process. The bucket
holds at most one second of tokens, so after a pause the sender does not
burst past what the provider allows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, up to ``burst``; ``rate`` 0 means no limit."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        """A full bucket: the first ``burst`` messages leave at once.

        ``clock`` and ``sleep`` default to this module's ``time`` functions,
        looked up when called (a test replaces them).
        """
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self.tokens = self.burst
        self._clock = clock or (lambda: time.monotonic())
        self._sleep = sleep or (lambda seconds: time.sleep(seconds))
        self._stamp = self._clock()
        self._lock = threading.Lock()

    def take(self) -> None:
        """Wait until a token is there and take it."""
        if not self.rate:
            return
        with self._lock:
            now = self._clock()
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self.tokens -= 1
            # Going below zero books a future token: wait for it outside the
            # bucket's state, holding the lock so the waits queue up in order.
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
            if wait:
                self._sleep(wait)
