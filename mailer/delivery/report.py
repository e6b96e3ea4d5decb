"""What a delivery run tells its caller: the report and the errors."""

from __future__ import annotations

from dataclasses import dataclass, field


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
