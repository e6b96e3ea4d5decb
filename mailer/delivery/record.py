"""Turn the workers' results into rows, in one commit per batch.

A "sent" is written only from a 250 the server gave; ``gate.commit`` commits
the batch and then lets the waiting connections end their next message. The
recorder also keeps the run's counts, and pauses a digest on a 5.7.x.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, update

from mailer.delivery import deliveries as rows
from mailer.delivery.faults import SendOutcome, next_attempt
from mailer.delivery.gate import Result, Results, commit
from mailer.delivery.report import DeliveryReport
from mailer.delivery.settings import RunSettings
from mailer.models import DeliveryStatus, Digest, DigestStatus, utcnow

log = logging.getLogger("mailer.delivery")
SKIPPED_REPLY = "not sent: the reader is no longer subscribed"


@dataclass(frozen=True)
class Collected:
    """What one ``collect`` took off the results queue."""

    handled: int  # results recorded, released ones included
    tried: int  # deliveries that got an outcome for the first time in this run (the progress bar)


class Recorder:
    """Records results and keeps the run's counts."""

    def __init__(self, settings: RunSettings, on_pause: Callable[[int, str], None]) -> None:
        """Keep the retry settings; ``on_pause`` hears of a digest paused by a 5.7.x."""
        self._on_pause = on_pause
        self.give_up = settings.give_up
        self.backoff = settings.backoff
        self.ceiling = settings.backoff_ceiling
        self.report = DeliveryReport()
        self.counts: dict[int, Counter[str]] = {}
        # Per digest, the deliveries whose latest try this run was deferred.
        self.deferred: dict[int, set[int]] = {}
        # Every delivery tried in this run.
        self.tried: set[int] = set()

    def collect(self, conn: Connection, results: Results, wait: float, connections: int = 1) -> Collected:
        """Record the waiting results (waiting up to ``wait`` s for the first) in one commit."""
        batch = results.gather(wait, connections)
        if not batch:
            return Collected(0, 0)
        commit(conn, batch, self._write)
        # A retry within the run is the same delivery again: the bar counts deliveries, not attempts.
        untried = (SendOutcome.RELEASED, SendOutcome.PAUSE)
        new = {r.item.delivery_id for r in batch if r.outcome not in untried} - self.tried
        self.tried |= new
        return Collected(len(batch), len(new))

    def _write(self, conn: Connection, batch: list[Result]) -> None:
        now = utcnow()
        rows.record(conn, [self._row(conn, result, now) for result in batch])

    def release(self, conn: Connection, items: list[rows.Claim]) -> int:
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
        if outcome is SendOutcome.SENT:
            report.sent += 1
            count["sent"] += 1
            return rows.outcome_row(item, DeliveryStatus.SENT, tried=True, reply=reply, now=now)
        if outcome is SendOutcome.DEFERRED:
            give_up_at = item.created_at + self.give_up
            if now < give_up_at:
                deferred.add(item.delivery_id)
                retry = next_attempt(item.attempts + 1, now, give_up_at, self.backoff, self.ceiling)
                return rows.outcome_row(item, DeliveryStatus.DEFERRED, tried=True, reply=reply, now=now, next_at=retry)
            reply = f"gave up: {reply}"
            outcome = SendOutcome.FAILED
        if outcome in (SendOutcome.FAILED, SendOutcome.BOUNCED):
            bounced = outcome is SendOutcome.BOUNCED
            report.failed += 1
            report.bounced += bounced
            count["failed"] += 1
            count["bounced"] += bounced
            return rows.outcome_row(item, DeliveryStatus.FAILED, tried=True, reply=reply, now=now, bounce=bounced)
        if outcome is SendOutcome.SKIPPED:
            report.skipped += 1
            count["skipped"] += 1
            return rows.outcome_row(item, DeliveryStatus.SKIPPED, tried=False, reply=SKIPPED_REPLY, now=now)
        if outcome is SendOutcome.PAUSE:
            self._pause(conn, item.digest_id, reply or "refused")
            return rows.outcome_row(item, item.status, tried=True, reply=reply, now=now)
        return rows.outcome_row(item, item.status, tried=False, reply=None, now=now)  # RELEASED

    def _pause(self, conn: Connection, digest_id: int, reply: str) -> None:
        """A 5.7.x (or a refused sender): pause the digest and tell the operator."""
        if any(d == digest_id for d, _ in self.report.paused):
            return
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
        self._on_pause(digest_id, reason)

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
