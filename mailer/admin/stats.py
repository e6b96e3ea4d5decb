"""The numbers of the dashboard: readers by status and per-digest delivery counts.

Read-only queries over the tables of every stage; each is one round trip,
whatever the number of readers or digests shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from mailer.models import Delivery, DeliveryStatus, Digest, DigestStatus, Subscriber, SubscriberStatus


def reader_counts(session: Session) -> dict[SubscriberStatus, int]:
    """How many readers are in each status (every status listed, zeros too)."""
    counts = dict.fromkeys(SubscriberStatus, 0)
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    for status, count in rows:
        counts[SubscriberStatus(status)] = count
    return counts


@dataclass
class DigestCounts:
    """A digest and where its deliveries stand."""

    digest: Digest
    pending: int = 0
    sent: int = 0
    deferred: int = 0
    # Failed for good, hard bounces not included (they are in ``bounced``).
    failed: int = 0
    bounced: int = 0
    # Not sent because the reader left (unsubscribed, erased) during the send.
    skipped: int = 0
    # Readers who received it and unsubscribed before the next digest.
    unsubscribed: int = 0
    # Copies reported as spam (ARF complaints); they were sent, so also in ``sent``.
    complained: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Every delivery of the digest."""
        return self.pending + self.sent + self.deferred + self.failed + self.bounced + self.skipped

    @property
    def settled(self) -> int:
        """Deliveries that will not be tried again (sent, skipped, or failed for good)."""
        return self.sent + self.failed + self.bounced + self.skipped

    @property
    def percent(self) -> int:
        """Settled deliveries as a whole percentage (100 for an empty digest)."""
        return 100 if not self.total else int(self.settled * 100 / self.total)

    @property
    def running(self) -> bool:
        """Still sending or paused, i.e. not finished."""
        return self.digest.status != DigestStatus.FINISHED


def digest_counts(session: Session, digests: Sequence[Digest]) -> list[DigestCounts]:
    """The delivery counts of ``digests``, in the same order."""
    results = {d.id: DigestCounts(d) for d in digests}
    if not results:
        return []
    ids = list(results)
    rows = session.execute(
        select(
            Delivery.digest_id,
            Delivery.status,
            func.count(),
            func.coalesce(func.sum(case((Delivery.bounce.is_(True), 1), else_=0)), 0),
            func.coalesce(func.sum(case((Delivery.complaint.is_(True), 1), else_=0)), 0),
        )
        .where(Delivery.digest_id.in_(ids))
        .group_by(Delivery.digest_id, Delivery.status)
    )
    for digest_id, status, count, bounced, complained in rows:
        entry = results[digest_id]
        entry.complained += complained
        status = DeliveryStatus(status)
        entry.by_status[status.value] = count
        if status == DeliveryStatus.FAILED:
            entry.failed += count - bounced
            entry.bounced += bounced
        else:
            setattr(entry, status.value, getattr(entry, status.value) + count)
    for digest_id, count in session.execute(_unsubscribed_after(ids)):
        results[digest_id].unsubscribed = count
    return [results[d.id] for d in digests]


def _unsubscribed_after(ids: list[int]):  # type: ignore[no-untyped-def]
    """Per digest: readers sent it who unsubscribed before the next digest was made.

    The unsubscribe link names the reader, not the digest, so the digest a
    reader "left from" is the last one they received before leaving, as
    listmonk and Mailchimp count it.
    """
    following = select(
        Digest.id.label("digest_id"),
        func.lead(Digest.created_at).over(order_by=Digest.id).label("next_at"),
    ).subquery()
    return (
        select(Delivery.digest_id, func.count())
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .join(following, following.c.digest_id == Delivery.digest_id)
        .where(
            Delivery.digest_id.in_(ids),
            Delivery.status == DeliveryStatus.SENT,
            Subscriber.unsubscribed_at.is_not(None),
            and_(
                Subscriber.unsubscribed_at >= Delivery.sent_at,
                or_(following.c.next_at.is_(None), Subscriber.unsubscribed_at < following.c.next_at),
            ),
        )
        .group_by(Delivery.digest_id)
    )


def latest_digests(session: Session, limit: int = 8) -> list[DigestCounts]:
    """The newest digests with their counts."""
    digests = session.scalars(select(Digest).order_by(Digest.id.desc()).limit(limit)).all()
    return digest_counts(session, digests)


def running_digests(session: Session) -> list[DigestCounts]:
    """Digests still sending or paused, oldest first, with their progress."""
    digests = session.scalars(
        select(Digest).where(Digest.status != DigestStatus.FINISHED).order_by(Digest.id)
    ).all()
    return digest_counts(session, digests)
