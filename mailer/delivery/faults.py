"""What an SMTP reply means for a delivery, and when to try again.

- 2xx after DATA: sent.
- 4xx anywhere (421 and a dropped connection included): deferred, retried
  with exponential backoff until ``DELIVERY_GIVE_UP_HOURS`` after the digest
  was queued, then failed.
- 5.1.x or 5.2.1 on RCPT or DATA (and a bare 550/551/553 on RCPT, from
  servers that send no enhanced code): the address does not exist, failed and
  marked as a bounce so that ``subscriptions/`` suppresses the reader.
- 5.7.x anywhere, or any 5xx on MAIL FROM: the server refuses *us* (policy,
  reputation, authentication, our sender address): the digest pauses and
  nobody is suppressed.
- any other 5xx: failed for this digest, the reader stays.
"""

from __future__ import annotations

import enum
import random
from datetime import datetime, timedelta

from mailer.delivery.transport import ABANDONED, Reply


class SendOutcome(enum.Enum):
    """What to do with a delivery after a reply."""

    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    BOUNCED = "bounced"
    PAUSE = "pause"
    # Not tried: the run stopped (pause, Ctrl-C) before the message left.
    RELEASED = "released"
    # Not tried: the reader is no longer a confirmed subscriber.
    SKIPPED = "skipped"


def classify(reply: Reply) -> SendOutcome:
    """The outcome of one message from the server's reply (see the module docstring)."""
    if reply.stage == ABANDONED:
        return SendOutcome.RELEASED
    if 200 <= reply.code < 300:
        return SendOutcome.SENT if reply.stage == "data" else SendOutcome.DEFERRED
    if 400 <= reply.code < 500:
        return SendOutcome.DEFERRED
    if reply.code < 500:  # a reply that is no SMTP reply at all: try later
        return SendOutcome.DEFERRED
    enhanced = reply.enhanced or ""
    if enhanced.startswith("5.7.") or reply.stage == "mail":
        return SendOutcome.PAUSE
    if reply.stage in ("rcpt", "data"):
        if enhanced.startswith("5.1.") or enhanced == "5.2.1":
            return SendOutcome.BOUNCED
        if not enhanced and reply.stage == "rcpt" and reply.code in (550, 551, 553):
            return SendOutcome.BOUNCED
    return SendOutcome.FAILED


def next_attempt(attempts: int, now: datetime, give_up_at: datetime, base: float, ceiling: float) -> datetime:
    """When to retry after ``attempts`` tries: base x 2^(attempts-1), at most ``ceiling`` s.

    A tenth of jitter spreads the retries of a big batch that failed together
    (a greylisting server); the last retry is never later than ``give_up_at``.
    """
    delay = min(ceiling, base * 2 ** max(0, attempts - 1))
    delay *= 1 + random.uniform(-0.1, 0.1)
    return min(now + timedelta(seconds=delay), give_up_at)
