"""Turn the workers' results into rows, in one commit per batch.

Each batch is whatever results are waiting when the main thread looks (group
commit): with N connections, about N messages a commit. A "sent" is written
only from a 250 the server gave, and the committing releases the worker that
waits to end its next message.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, update

from mailer.delivery import queue as rows
from mailer.delivery.faults import Outcome, next_attempt
from mailer.delivery.report import DeliveryReport
from mailer.delivery.settings import RunSettings
from mailer.delivery.worker import HURRY, Result
from mailer.models import DeliveryStatus, Digest, DigestStatus, utcnow

if TYPE_CHECKING:
    from mailer.delivery.run import Run

log = logging.getLogger("mailer.delivery")
# The longest a result waits for others to share its commit.
LINGER = 0.005
SKIPPED_REPLY = "not sent: the reader is no longer subscribed"


@dataclass(frozen=True)
class Collected:
    """What one ``collect`` took off the results queue."""

    handled: int  # results recorded, released ones included
    tried: int  # deliveries that got an outcome for the first time in this run (the progress bar)


class Recorder:
    """Records results and keeps the run's counts."""

    def __init__(self, settings: RunSettings, run: Run) -> None:
        """Keep the retry settings."""
        self.run = run
        self.give_up = settings.give_up
        self.backoff = settings.backoff
        self.ceiling = settings.backoff_ceiling
        self.report = DeliveryReport()
        self.counts: dict[int, Counter[str]] = {}
        # Per digest, the deliveries whose latest try this run was deferred.
        self.deferred: dict[int, set[int]] = {}
        # Every delivery tried in this run.
        self.tried: set[int] = set()

    def collect(self, conn: Connection, results: queue.SimpleQueue[Result], wait: float,
                connections: int = 1) -> Collected:
        """Record the waiting results (waiting up to ``wait`` s for the first); commit.

        Group commit: after the first result, gather more for up to
        ``LINGER`` s, until each of the ``connections`` has a "sent" waiting
        (none can send another before this commit), or until a worker asks
        to hurry (``HURRY``: it has reached the final "." of its next
        message). Till then the workers are busy with their next message's
        envelope and body, so the wait costs them nothing.
        """
        batch: list[Result] = []
        try:
            first = results.get(timeout=wait) if wait else results.get_nowait()
        except queue.Empty:
            return Collected(0, 0)
        hurry = first is HURRY
        if not hurry:
            batch.append(first)
        deadline = time.monotonic() + LINGER
        waiting = {id(first.worker)} if first.outcome is Outcome.SENT else set()
        while not hurry and len(waiting) < connections:
            left = deadline - time.monotonic()
            try:
                result = results.get(timeout=left) if left > 0 else results.get_nowait()
            except queue.Empty:
                break
            if result is HURRY:
                hurry = True
                break
            batch.append(result)
            if result.outcome is Outcome.SENT:
                waiting.add(id(result.worker))
        while True:  # whatever else is there already
            try:
                result = results.get_nowait()
            except queue.Empty:
                break
            if result is not HURRY:
                batch.append(result)
        if not batch:
            return Collected(0, 0)
        now = utcnow()
        outcomes = [self._row(conn, result, now) for result in batch]
        rows.record(conn, outcomes)
        conn.commit()
        for result in batch:
            if result.outcome is Outcome.SENT and result.worker is not None:
                result.worker.committed.set()
        # A retry within the run is the same delivery again: the bar counts deliveries, not attempts.
        new = {r.item.delivery_id for r in batch if r.outcome not in (Outcome.RELEASED, Outcome.PAUSE)} - self.tried
        self.tried |= new
        return Collected(len(batch), len(new))

    def release(self, conn: Connection, items: list[rows.Item]) -> int:
        """Give back claimed rows that were never tried; commit."""
        if items:
            now = utcnow()
            rows.record(conn, [rows.outcome_row(i, i.status, tried=False, reply=None, now=now) for i in items])
            conn.commit()
        return len(items)

    def _row(self, conn: Connection, result: Result, now: Any) -> dict[str, Any]:
        """The row update for one result; counts it; pauses the digest on a 5.7.x."""
        item, outcome, reply = result.item, result.outcome, result.reply
        count = self.counts.setdefault(item.digest_id, Counter())
        report = self.report
        deferred = self.deferred.setdefault(item.digest_id, set())
        deferred.discard(item.delivery_id)
        if outcome is Outcome.SENT:
            report.sent += 1
            count["sent"] += 1
            return rows.outcome_row(item, DeliveryStatus.SENT, tried=True, reply=reply, now=now)
        if outcome is Outcome.DEFERRED:
            give_up_at = item.created_at + self.give_up
            if now < give_up_at:
                deferred.add(item.delivery_id)
                retry = next_attempt(item.attempts + 1, now, give_up_at, self.backoff, self.ceiling)
                return rows.outcome_row(item, DeliveryStatus.DEFERRED, tried=True, reply=reply, now=now, next_at=retry)
            reply = f"gave up: {reply}"
            outcome = Outcome.FAILED
        if outcome in (Outcome.FAILED, Outcome.BOUNCED):
            bounced = outcome is Outcome.BOUNCED
            report.failed += 1
            report.bounced += bounced
            count["failed"] += 1
            count["bounced"] += bounced
            return rows.outcome_row(item, DeliveryStatus.FAILED, tried=True, reply=reply, now=now, bounce=bounced)
        if outcome is Outcome.SKIPPED:
            report.skipped += 1
            count["skipped"] += 1
            return rows.outcome_row(item, DeliveryStatus.FAILED, tried=False, reply=SKIPPED_REPLY, now=now)
        if outcome is Outcome.PAUSE:
            self._pause(conn, item.digest_id, reply or "refused")
            return rows.outcome_row(item, item.status, tried=True, reply=reply, now=now)
        return rows.outcome_row(item, item.status, tried=False, reply=None, now=now)  # RELEASED

    def _pause(self, conn: Connection, digest_id: int, reply: str) -> None:
        """A 5.7.x (or a refused sender): pause the digest and tell the operator."""
        if any(d == digest_id for d, _ in self.report.paused):
            return
        self.run.halt(digest_id)
        reason = (
            f"the SMTP server refused us, not the reader: {reply}. Nothing more is sent and nobody is "
            "suppressed; check the sender's setup (SPF, DKIM, DMARC, the relay's limits and reputation), "
            "then resume the digest"
        )
        conn.execute(
            update(Digest).where(Digest.id == digest_id, Digest.status == DigestStatus.SENDING)
            .values(status=DigestStatus.PAUSED, paused_reason=reason[:2000])
        )
        self.report.paused.append((digest_id, reason))
        log.error("digest %d paused: %s", digest_id, reason)
        self.run.echo(f"digest {digest_id} paused: {reason}")

    def line(self, digest_id: int) -> str:
        """The digest's counts in this run, for the operator."""
        count = self.counts.get(digest_id, Counter())
        # Deferred: the deliveries still waiting at the end, however often each was tried.
        deferred = len(self.deferred.get(digest_id, ()))
        line = f"{count['sent']} sent, {deferred} deferred, {count['failed']} failed"
        if count["bounced"]:
            line += f" ({count['bounced']} bounced)"
        if count["skipped"]:
            line += f", {count['skipped']} skipped (unsubscribed)"
        return line
