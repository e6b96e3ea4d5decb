"""What a delivery run tells its caller: the report, the errors, and its progress on the way."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def n_deliveries(count: int) -> str:
    """``1 delivery``, ``3 deliveries``."""
    return f"{count} delivery" if count == 1 else f"{count} deliveries"


class DeliveryError(Exception):
    """The SMTP server cannot be used at all (refused, TLS or auth failed).

    The message is one line for the operator. Nothing unsent was marked sent.
    """

    exit_status = 1


class SenderBusyError(DeliveryError):
    """Another sender holds the queue (SQLite allows one at a time).

    Not a failure of this run: the other sender is doing the work, so the
    command line exits with EX_TEMPFAIL (75), "try again later".
    """

    exit_status = 75


@dataclass
class DeliveryReport:
    """Counts of one run of ``deliver``.

    ``sent``, ``failed``, ``bounced`` (failed because the address does not
    exist; also counted in ``failed``) and ``skipped`` (the reader left before
    their turn) count what this run did. ``deferred`` is a state, not an
    event: the deliveries still waiting for a retry when the run ended, over
    every sending digest. ``paused`` lists digests this run had to pause
    (``(digest id, reason)``): they wait for the operator.
    """

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    skipped: int = 0
    paused: list[tuple[int, str]] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    # Digests found paused when the run began (by the operator or an earlier
    # run): their deliveries are not settled either.
    still_paused: list[int] = field(default_factory=list)
    # The sending digests this run took up (a sender that finds another
    # one's new digest afterwards knows to join it).
    digests: list[int] = field(default_factory=list)

    def merge(self, other: DeliveryReport) -> DeliveryReport:
        """This run followed by ``other``: counts add up, ``deferred`` is the later state."""
        return DeliveryReport(
            sent=self.sent + other.sent,
            deferred=other.deferred,
            failed=self.failed + other.failed,
            bounced=self.bounced + other.bounced,
            skipped=self.skipped + other.skipped,
            paused=self.paused + [p for p in other.paused if p not in self.paused],
            finished=self.finished + [d for d in other.finished if d not in self.finished],
            still_paused=other.still_paused,
            digests=self.digests + [d for d in other.digests if d not in self.digests],
        )

    @property
    def settled(self) -> bool:
        """True when nothing waits: no deferred delivery, no digest paused by this run."""
        return not self.deferred and not self.paused

    def line(self) -> str:
        """One line for the operator."""
        parts = [f"{self.sent} sent", f"{self.deferred} deferred", f"{self.failed} failed"]
        if self.bounced:
            parts.append(f"{self.bounced} of them bounced")
        if self.skipped:
            parts.append(f"{self.skipped} skipped (unsubscribed)")
        return ", ".join(parts)


# --- progress --------------------------------------------------------------
# Progress of a send: a bar with rate and ETA on a terminal, log lines otherwise.
#
# Everything goes through the ``echo`` callable the caller gave (``click.echo``
# for ``digest send``, a logger for the scheduler and the dashboard). The bar
# redraws in place only when ``echo`` can write without a line break and the
# output is a terminal; anywhere else a line every ``interval`` seconds.

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
