"""Jobs on the whole list: purge unconfirmed signups and old outbox mails, suppress bounced and complaining readers.

Both are plain functions the scheduler (and the admin) call with a session;
the caller commits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from mailer.models import (
    ConsentAction,
    ConsentChannel,
    ConsentEvent,
    Delivery,
    OutboundMail,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.subscriptions import consent
from mailer.subscriptions.addresses import erased_hash
from mailer.subscriptions.signup import new_nonce

log = logging.getLogger("mailer.subscriptions")
SUBSCRIBERS = cast(Table, Subscriber.__table__)


def purge_unconfirmed(session: Session, config: Mapping[str, Any], now: datetime) -> int:
    """Drop signups left unconfirmed for ``PURGE_UNCONFIRMED_DAYS``; their links stop working.

    A never-confirmed address is deleted (its consent events keep only the
    actions and the hash). A returning reader's unconfirmed request is
    withdrawn: the row keeps its old state, the nonce changes so the link
    dies, and an erased row loses the address again. Imported pending rows
    that were never sent a confirmation are left alone. Returns the number
    of signups purged.
    """
    cutoff = now - timedelta(days=int(config["PURGE_UNCONFIRMED_DAYS"]))
    stale = Subscriber.confirm_requested_at < cutoff
    rows = session.execute(select(Subscriber.id, Subscriber.email_hash, Subscriber.status).where(stale)).all()
    if not rows:
        return 0
    # An erased reader's withdrawn signup: the row goes back to the keyed hash, and
    # the request's events with it (scrubbed), so no plain hash of the address stays.
    keyed = {sid: erased_hash(email_hash, config["SECRET_KEY"])
             for sid, email_hash, status in rows if status is SubscriberStatus.ERASED}
    events = [
        {"subscriber_id": None if status is SubscriberStatus.PENDING else sid,
         "email_hash": keyed.get(sid, email_hash),
         "action": ConsentAction.PURGE, "channel": ConsentChannel.SYSTEM, "occurred_at": now, "details": {}}
        for sid, email_hash, status in rows
    ]
    for sid, email_hash, _status in (row for row in rows if row[0] in keyed):
        consent.scrub(session, email_hash, keyed[sid])
    pending_hashes = [email_hash for _sid, email_hash, status in rows if status is SubscriberStatus.PENDING]
    for start in range(0, len(pending_hashes), 500):
        # Who asked, from where: not ours to keep for a signup nobody confirmed.
        session.execute(
            update(ConsentEvent).where(ConsentEvent.email_hash.in_(pending_hashes[start:start + 500]))
            .values(ip=None, user_agent=None, source_page=None, details={}),
            execution_options={"synchronize_session": False},
        )
    session.execute(
        delete(Subscriber).where(stale, Subscriber.status == SubscriberStatus.PENDING),
        execution_options={"synchronize_session": False},
    )
    for sid, _hash, status in rows:
        if status is SubscriberStatus.PENDING:
            continue
        values: dict[str, Any] = {"confirm_nonce": new_nonce(), "confirm_requested_at": None}
        if status is SubscriberStatus.ERASED:
            values.update(email=None, email_hash=keyed[sid])
        session.execute(update(Subscriber).where(Subscriber.id == sid).values(**values),
                        execution_options={"synchronize_session": False})
    session.execute(insert(ConsentEvent), events)
    log.info("purged %d unconfirmed signups older than %s", len(rows), cutoff.isoformat())
    return len(rows)


def purge_outbox(session: Session, config: Mapping[str, Any], now: datetime) -> int:
    """Delete transactional mails sent ``OUTBOX_RETENTION_DAYS`` ago (or queued then, if they never left).

    A row holds the reader's address and live links (confirmation, "my
    data"): once it has left, nothing needs it but a debugging operator. The
    confirmation budget reads only the last hour's rows (``budget.py``), the
    per-address limit the subscriber's own ``confirmations_sent``, and the
    setting is at least a day. Returns how many rows were deleted.
    """
    cutoff = now - timedelta(days=int(config["OUTBOX_RETENTION_DAYS"]))
    result = session.execute(
        delete(OutboundMail).where(func.coalesce(OutboundMail.sent_at, OutboundMail.created_at) < cutoff),
        execution_options={"synchronize_session": False},
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.info("deleted %d outbox mails older than %s", count, cutoff.isoformat())
    return count


def suppress_bounced(session: Session) -> int:
    """Readers whose address hard-bounced since they confirmed become "bounced".

    ``delivery/`` marks ``Delivery.bounce``; only this package changes a
    status. Bounces from before a reader's latest confirmation do not count,
    so a reader who fixed the mailbox and subscribed again stays. Returns
    how many readers were suppressed.
    """
    bounced = exists().where(
        Delivery.subscriber_id == Subscriber.id,
        Delivery.bounce.is_(True),
        Delivery.created_at >= Subscriber.confirmed_at,
    )
    rows = session.execute(
        select(Subscriber.id, Subscriber.email_hash, Subscriber.language)
        .where(and_(Subscriber.status == SubscriberStatus.CONFIRMED, bounced))
    ).all()
    if not rows:
        return 0
    ids = [sid for sid, _hash, _language in rows]
    for start in range(0, len(ids), 500):
        session.execute(
            update(Subscriber).where(Subscriber.id.in_(ids[start:start + 500]))
            .values(status=SubscriberStatus.BOUNCED),
            execution_options={"synchronize_session": False},
        )
    session.execute(insert(ConsentEvent), [
        {"subscriber_id": sid, "email_hash": email_hash, "action": ConsentAction.BOUNCE,
         "channel": ConsentChannel.SYSTEM, "language": language, "details": {}}
        for sid, email_hash, language in rows
    ])
    log.info("suppressed %d bounced addresses", len(rows))
    return len(rows)


def suppress_complained(session: Session) -> int:
    """Readers who reported a digest as spam since they last confirmed become "complained".

    ``delivery/`` marks ``Delivery.complaint`` (an ARF report whose stamp
    verified). Whatever the reader's status but erased, a complaint is the
    strongest "no": they are never mailed again, and come back only by
    signing up and confirming anew (a new ``confirmed_at``, after which the
    old complaint no longer counts). Returns how many readers changed.
    """
    complained = exists().where(
        Delivery.subscriber_id == Subscriber.id,
        Delivery.complaint.is_(True),
        Delivery.created_at >= Subscriber.confirmed_at,
    )
    rows = session.execute(
        select(Subscriber.id, Subscriber.email_hash, Subscriber.language, Subscriber.status)
        .where(Subscriber.status.not_in([SubscriberStatus.COMPLAINED, SubscriberStatus.ERASED]), complained)
    ).all()
    if not rows:
        return 0
    now = utcnow()
    # A new nonce: a confirmation link mailed before the complaint no longer
    # brings the reader back; only a new signup's does.
    session.execute(
        update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == bindparam("sid"))
        .values(status=SubscriberStatus.COMPLAINED, confirm_nonce=bindparam("nonce"), confirm_requested_at=None),
        [{"sid": row.id, "nonce": new_nonce()} for row in rows],
        execution_options={"synchronize_session": False},
    )
    session.execute(insert(ConsentEvent), [
        {"subscriber_id": row.id, "email_hash": row.email_hash, "action": ConsentAction.COMPLAINT,
         "channel": ConsentChannel.SYSTEM, "language": row.language, "occurred_at": now,
         "details": {"previous_status": str(SubscriberStatus(row.status))}}
        for row in rows
    ])
    log.info("suppressed %d readers who complained", len(rows))
    return len(rows)
