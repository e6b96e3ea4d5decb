"""The database is the queue: claim due deliveries, record what happened.

Rows are claimed in batches with a lease (``claimed_by``, ``lease_until``),
through ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL so that several
senders share a digest without ever taking the same row. A row's outcome is
written only once the server has answered; a sender that dies leaves its
claims to expire (or, on the same host, to be taken back at once).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, exists, func, or_, select, text, update
from sqlalchemy.sql.elements import ColumnElement

from mailer.models import Delivery, DeliveryStatus, Digest, DigestStatus, Subscriber

WAITING = (DeliveryStatus.PENDING, DeliveryStatus.DEFERRED)


@dataclass(frozen=True, slots=True)
class Claim:
    """One claimed delivery, with what sending it needs."""

    delivery_id: int
    digest_id: int
    edition_id: int
    subscriber_id: int
    email: str | None
    status: DeliveryStatus
    attempts: int
    created_at: datetime


def _due(digest_id: int, now: datetime) -> ColumnElement[bool]:
    """Rows to send now: pending, or deferred and past their retry time."""
    return and_(
        Delivery.digest_id == digest_id,
        or_(
            Delivery.status == DeliveryStatus.PENDING,
            and_(Delivery.status == DeliveryStatus.DEFERRED, Delivery.next_attempt_at <= now),
        ),
    )


def _free(now: datetime) -> ColumnElement[bool]:
    """Rows no live sender holds."""
    return or_(Delivery.claimed_by.is_(None), Delivery.lease_until < now)


_COLUMNS = (Delivery.id, Delivery.subscriber_id, Delivery.edition_id, Delivery.status, Delivery.attempts,
            Delivery.created_at)


def claim(conn: Connection, digest_id: int, me: str, now: datetime, lease: float, limit: int) -> list[Claim]:
    """Claim up to ``limit`` due rows of the digest, oldest first; the caller commits."""
    ids = (
        select(Delivery.id).where(_due(digest_id, now), _free(now))
        .order_by(Delivery.id).limit(limit).with_for_update(skip_locked=True)
    )
    rows = conn.execute(
        update(Delivery).where(Delivery.id.in_(ids.scalar_subquery()))
        .values(claimed_by=me, lease_until=now + timedelta(seconds=lease))
        .returning(*_COLUMNS)
    ).all()
    return _items(conn, digest_id, rows)


def take(conn: Connection, digest_id: int, after: int, now: datetime, limit: int) -> list[Claim]:
    """Due rows after id ``after``, without claiming them: for a sender alone by lock.

    On SQLite the file lock already keeps every other sender out, so writing
    claims would only write each row twice.
    """
    rows = conn.execute(
        select(*_COLUMNS).where(_due(digest_id, now), Delivery.id > after).order_by(Delivery.id).limit(limit)
    ).all()
    return _items(conn, digest_id, rows)


def _items(conn: Connection, digest_id: int, rows: Sequence[Any]) -> list[Claim]:
    """Items from delivery rows, with their readers' addresses."""
    if not rows:
        return []
    found = conn.execute(
        select(Subscriber.id, Subscriber.email).where(Subscriber.id.in_([r.subscriber_id for r in rows]))
    )
    emails: dict[int, str | None] = {row.id: row.email for row in found}
    items = [
        Claim(r.id, digest_id, r.edition_id, r.subscriber_id, emails.get(r.subscriber_id),
             DeliveryStatus(r.status), r.attempts, r.created_at)
        for r in rows
    ]
    items.sort(key=lambda item: item.delivery_id)  # RETURNING keeps no order
    return items


_RECORD = (
    update(Delivery)
    .where(Delivery.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=Delivery.attempts + bindparam("b_tries"),
        last_reply=func.coalesce(bindparam("b_reply"), Delivery.last_reply),
        next_attempt_at=bindparam("b_next"),
        sent_at=bindparam("b_sent_at"),
        bounce=bindparam("b_bounce"),
        claimed_by=None,
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)


# PostgreSQL: one statement for the whole batch (executemany costs a round
# trip and a parse per row there), arrays unnested into rows.
_RECORD_PG = text(
    "UPDATE deliveries AS d SET status = v.status, attempts = d.attempts + v.tries,"
    " last_reply = coalesce(v.reply, d.last_reply), next_attempt_at = coalesce(v.next, d.next_attempt_at),"
    " sent_at = v.sent_at, bounce = v.bounce, claimed_by = NULL, lease_until = NULL, updated_at = v.now"
    " FROM unnest(CAST(:ids AS BIGINT[]), CAST(:statuses AS VARCHAR[]), CAST(:tries AS INTEGER[]),"
    " CAST(:replies AS TEXT[]), CAST(:nexts AS TIMESTAMP[]), CAST(:sent AS TIMESTAMP[]),"
    " CAST(:bounces AS BOOLEAN[]), CAST(:nows AS TIMESTAMP[]))"
    " AS v (id, status, tries, reply, next, sent_at, bounce, now) WHERE d.id = v.id"
)


def record(conn: Connection, outcomes: Sequence[dict[str, Any]]) -> None:
    """Write outcomes (from ``outcome_row``) in one statement or executemany; the caller commits."""
    if not outcomes:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(_RECORD_PG, {
            "ids": [o["b_id"] for o in outcomes], "statuses": [str(o["b_status"].value) for o in outcomes],
            "tries": [o["b_tries"] for o in outcomes], "replies": [o["b_reply"] for o in outcomes],
            "nexts": [o["b_next"] for o in outcomes], "sent": [o["b_sent_at"] for o in outcomes],
            "bounces": [o["b_bounce"] for o in outcomes], "nows": [o["b_now"] for o in outcomes],
        })
    else:
        conn.execute(_RECORD, list(outcomes))


def outcome_row(item: Claim, status: DeliveryStatus, *, tried: bool, reply: str | None, now: datetime,
                next_at: datetime | None = None, bounce: bool = False) -> dict[str, Any]:
    """The parameters of ``record`` for one delivery."""
    return {
        "b_id": item.delivery_id, "b_status": status, "b_tries": 1 if tried else 0,
        "b_reply": reply[:1000] if reply is not None else None, "b_next": next_at,
        "b_sent_at": now if status == DeliveryStatus.SENT else None, "b_bounce": bounce, "b_now": now,
    }


def renew(conn: Connection, digest_id: int, me: str, now: datetime, lease: float) -> None:
    """Extend the lease of the digest's rows this sender holds; the caller commits."""
    conn.execute(
        update(Delivery).where(Delivery.digest_id == digest_id, Delivery.status.in_(WAITING),
                               Delivery.claimed_by == me)
        .values(lease_until=now + timedelta(seconds=lease))
    )


def release(conn: Connection, claimant: str) -> int:
    """Drop every claim of ``claimant`` (ours at the end, a dead sender's); the caller commits."""
    result = conn.execute(
        update(Delivery).where(Delivery.claimed_by == claimant).values(claimed_by=None, lease_until=None)
    )
    return int(result.rowcount or 0)


def claimants(conn: Connection, digest_id: int, now: datetime) -> list[str]:
    """The senders holding live claims on the digest's waiting rows."""
    return list(conn.scalars(
        select(Delivery.claimed_by).distinct()
        .where(Delivery.digest_id == digest_id, Delivery.status.in_(WAITING),
               Delivery.claimed_by.is_not(None), Delivery.lease_until >= now)
    ))


def give_up_expired(conn: Connection, digest_id: int, cutoff: datetime, now: datetime) -> int:
    """Fail the deferred rows queued before ``cutoff`` (DELIVERY_GIVE_UP_HOURS ago)."""
    result = conn.execute(
        update(Delivery)
        .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.DEFERRED,
               Delivery.created_at < cutoff, _free(now))
        .values(status=DeliveryStatus.FAILED, updated_at=now,
                last_reply=func.coalesce("gave up: " + Delivery.last_reply, "gave up"))
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class Remaining:
    """What is left of a digest when this sender has nothing more to claim."""

    held: int  # waiting rows other live senders hold
    deferred: int  # rows deferred, due later
    next_retry: datetime | None  # when the first of them is due


def remaining(conn: Connection, digest_id: int, me: str, now: datetime) -> Remaining:
    """Count what keeps the digest from finishing."""
    held = conn.scalar(
        select(func.count()).where(Delivery.digest_id == digest_id, Delivery.status.in_(WAITING),
                                   Delivery.claimed_by != me, Delivery.lease_until >= now)
    )
    deferred, next_retry = conn.execute(
        select(func.count(), func.min(Delivery.next_attempt_at))
        .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.DEFERRED)
    ).one()
    return Remaining(int(held or 0), int(deferred or 0), next_retry)


def count_due(conn: Connection, digest_id: int, now: datetime) -> int:
    """Rows of the digest to send now, free or not (for the progress bar)."""
    return int(conn.scalar(select(func.count()).where(_due(digest_id, now))) or 0)


def count_deferred(conn: Connection) -> int:
    """Deferred rows over every digest still sending."""
    return int(conn.scalar(
        select(func.count()).select_from(Delivery).join(Digest, Digest.id == Delivery.digest_id)
        .where(Digest.status == DigestStatus.SENDING, Delivery.status == DeliveryStatus.DEFERRED)
    ) or 0)


def finish_if_done(conn: Connection, digest_id: int, now: datetime) -> bool:
    """Mark the digest finished if no row is pending or deferred; the caller commits."""
    waiting = exists().where(Delivery.digest_id == digest_id, Delivery.status.in_(WAITING))
    result = conn.execute(
        update(Digest).where(Digest.id == digest_id, Digest.status == DigestStatus.SENDING, ~waiting)
        .values(status=DigestStatus.FINISHED, finished_at=now)
    )
    return bool(result.rowcount)


def sending_digests(conn: Connection) -> list[int]:
    """Ids of the digests to send, oldest first."""
    return list(conn.scalars(select(Digest.id).where(Digest.status == DigestStatus.SENDING).order_by(Digest.id)))


def paused_digests(conn: Connection) -> list[tuple[int, str | None]]:
    """Ids and reasons of the paused digests, oldest first."""
    found = conn.execute(select(Digest.id, Digest.paused_reason).where(Digest.status == DigestStatus.PAUSED)
                         .order_by(Digest.id))
    return [(row.id, row.paused_reason) for row in found]


def digest_status(conn: Connection, digest_id: int) -> tuple[DigestStatus | None, str | None]:
    """The digest's status and pause reason (None if it was deleted)."""
    row = conn.execute(select(Digest.status, Digest.paused_reason).where(Digest.id == digest_id)).first()
    return (DigestStatus(row[0]), row[1]) if row else (None, None)


# --- the feeder ----------------------------------------------------------
# Claims the next batch in a thread of its own.
#
# A claim of 500 rows takes milliseconds; done by the main thread it would
# hold up the commits that the workers wait for before ending each message.
# The feeder has its own database connection and at most one claim going.


class Feeder:
    """Runs ``claim`` (or ``take``, for a sender alone) off the main thread."""

    def __init__(self, engine: Engine, me: str, lease: float, exclusive: bool) -> None:
        """Nothing runs until the first ``request``."""
        self.engine = engine
        self.me = me
        self.lease = lease
        self.exclusive = exclusive
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="claims")
        self._local = threading.local()
        self._future: Future[list[Claim]] | None = None

    @property
    def busy(self) -> bool:
        """True while a claim is going or its result has not been taken."""
        return self._future is not None

    def request(self, digest_id: int, after: int, now: datetime, limit: int) -> None:
        """Start claiming up to ``limit`` of the digest's rows (those after id ``after`` when alone)."""
        assert self._future is None, "one claim at a time"
        self._future = self._executor.submit(self._fetch, digest_id, after, now, limit)

    def ready(self, timeout: float = 0.0) -> list[Claim] | None:
        """The claimed batch once there (waiting up to ``timeout``), else None."""
        future = self._future
        if future is None:
            return None
        if timeout:
            wait_for([future], timeout)
        if not future.done():
            return None
        self._future = None
        return future.result()  # a database error surfaces here, in the main thread

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.engine.connect()
        return conn

    def _fetch(self, digest_id: int, after: int, now: datetime, limit: int) -> list[Claim]:
        conn = self._connection()
        try:
            if self.exclusive:
                items = take(conn, digest_id, after, now, limit)
            else:
                items = claim(conn, digest_id, self.me, now, self.lease, limit)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return items

    def _close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    def close(self) -> list[Claim]:
        """Stop the thread; return a batch claimed meanwhile (to be released)."""
        left = self.ready(timeout=60.0) if self._future is not None else None
        self._executor.submit(self._close).result()
        self._executor.shutdown(wait=True)
        return left or []
