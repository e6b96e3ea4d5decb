"""Progress of a send: a bar with rate and ETA on a terminal, log lines otherwise.

Everything goes through the ``echo`` callable the caller gave (``click.echo``
for ``digest send``, a logger for the scheduler and the dashboard). The bar
redraws in place only when ``echo`` can write without a line break and the
output is a terminal; anywhere else a line every ``interval`` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

BAR_WIDTH = 30


def _inline_writer(echo: Callable[..., Any]) -> Callable[[str], None] | None:
    """A writer without line breaks when ``echo`` is click.echo or print on a terminal."""
    if not sys.stdout.isatty():
        return None
    import click

    if echo is click.echo:
        return lambda text: click.echo(text, nl=False)
    if echo is print:
        return lambda text: print(text, end="", flush=True)
    return None


def duration(seconds: float) -> str:
    """``1:02:03`` or ``2:03``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts done out of ``total`` and shows it now and then."""

    def __init__(self, echo: Callable[..., Any], total: int, label: str, *,
                 interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Start the clock; ``interval`` spaces log lines (the bar redraws 5 times a second)."""
        self.echo = echo
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self._clock = clock
        self._start = clock()
        self._inline = _inline_writer(echo)
        self._interval = 0.2 if self._inline else interval
        self._shown = self._start

    def advance(self, count: int) -> None:
        """Count ``count`` more messages done (sent, failed or deferred)."""
        self.done += count
        if self.done > self.total:  # rows another sender released joined the queue
            self.total = self.done
        now = self._clock()
        if now - self._shown >= self._interval:
            self._shown = now
            self.show(now)

    def rate(self, now: float | None = None) -> float:
        """Messages a second so far."""
        elapsed = (now if now is not None else self._clock()) - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, now: float | None = None) -> str:
        """``label  1234/5000 (24%)  410/s  ETA 0:09``."""
        rate = self.rate(now)
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        eta = f"  ETA {duration((self.total - self.done) / rate)}" if rate and self.total > self.done else ""
        return f"{self.label}  {self.done}/{self.total}{share}  {rate:.0f}/s{eta}"

    def show(self, now: float | None = None) -> None:
        """Draw the bar, or write a log line."""
        if self._inline is None:
            self.echo(self.line(now))
            return
        filled = BAR_WIDTH * self.done // self.total if self.total else BAR_WIDTH
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self._inline(f"\r[{bar}] {self.line(now)}\x1b[K")

    def close(self) -> None:
        """End the bar's line (the caller prints the summary after it)."""
        if self._inline is not None:
            self.show()
            self._inline("\n")
