"""Signup: the rules behind ``POST /subscribe`` and ``POST /api/subscribe``.

Whatever the address's state, the caller answers the same thing; only what
happens behind differs. A new, pending, unsubscribed, bounced or erased
address gets a (fresh) confirmation mail, within the mail-bombing limits; a
confirmed one gets nothing and keeps its settings, since anybody can type
anybody's address into the form. Every request writes one consent event, so
every answer also costs the same database work.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from mailer.models import Subscriber, SubscriberStatus, utcnow
from mailer.subscriptions import consent
from mailer.subscriptions.addresses import Address
from mailer.subscriptions.consent import INSERT_EVENT
from mailer.subscriptions.mails import confirmation_template
from mailer.subscriptions.throttle import OUTBOX, hourly_cap_reached, recent_sends, recently_mailed

log = logging.getLogger("mailer.subscriptions")

SUBSCRIBERS = cast(Table, Subscriber.__table__)
# The statements of the hot path, built once: building a statement per request
# (and computing its cache key) costs several times what SQLite takes to run it.
# One round trip: is the address known, and the outbox's newest id (for the hourly cap).
LOOKUP = select(
    select(SUBSCRIBERS.c.id).where(SUBSCRIBERS.c.email_hash == bindparam("email_hash")).scalar_subquery(),
    select(func.max(OUTBOX.c.id)).scalar_subquery(),
)
INSERT_SUBSCRIBER = insert(SUBSCRIBERS).returning(SUBSCRIBERS.c.id)
INSERT_MAIL = insert(OUTBOX)


class Outcome(enum.StrEnum):
    """What a signup did (never shown to the requester)."""

    MAILED = "mailed"  # a confirmation mail is queued
    THROTTLED = "throttled"  # the address had one lately
    CAPPED = "capped"  # the global hourly cap is reached
    ALREADY_CONFIRMED = "already-confirmed"


@dataclass(frozen=True)
class SignupRequest:
    """A validated signup, from the form or the API."""

    address: Address
    topics: str  # normalised (mailer.topics.normalise_topics)
    language: str
    channel: str  # consent.FORM or consent.API
    consent_text: str
    origin: consent.Origin = consent.NOWHERE


def new_nonce() -> str:
    """A fresh value that binds confirm tokens to one pending signup."""
    return secrets.token_hex(16)


def signup(session: Session, config: Mapping[str, Any], req: SignupRequest, now: datetime | None = None) -> Outcome:
    """Apply a signup request; the caller commits, then wakes the outbox.

    Reads and rendering come first and the writes last, all together: on
    SQLite a transaction holds the database's write lock from its first
    write to its commit, and every other signup waits for it meanwhile.
    """
    now = now or utcnow()
    conn = session.connection()
    # One round trip: is the address known, and the outbox's newest id (for the hourly cap).
    found, newest_id = conn.execute(LOOKUP, {"email_hash": req.address.hash}).one()
    capped = hourly_cap_reached(conn, config, newest_id, now)
    if found is None:
        return _new_signup(session, config, req, now, capped)
    subscriber = session.get_one(Subscriber, found)
    if subscriber.status is SubscriberStatus.CONFIRMED:
        outcome = Outcome.ALREADY_CONFIRMED
    elif recently_mailed(subscriber, now):
        outcome = Outcome.THROTTLED
        if subscriber.status is SubscriberStatus.PENDING:
            # The reader is still there: the latest mailed link stays good,
            # and the purge counts from this request.
            subscriber.topics, subscriber.language = req.topics, req.language
            subscriber.confirm_requested_at = now
    elif capped:
        outcome = Outcome.CAPPED
    else:
        template = confirmation_template(config, req.language)
        nonce = _claim(session, subscriber, req, now)
        if nonce is None:
            outcome = Outcome.THROTTLED
        else:
            outcome = Outcome.MAILED
            _queue(session, template.for_address(req.address.email).values(config, subscriber.id, nonce))
    session.connection().execute(INSERT_EVENT, [_signup_event(subscriber.id, req, outcome, now)])
    return outcome


def _new_signup(
    session: Session, config: Mapping[str, Any], req: SignupRequest, now: datetime, capped: bool
) -> Outcome:
    """A first signup for the address: a pending subscriber and its mail.

    Plain Core INSERTs: this is the path a viral article takes thousands of
    times a minute, and the ORM's unit of work would be most of its cost.
    Everything is prepared before the first INSERT, so that the write lock
    (SQLite's, for the whole database) is held for the three INSERTs alone.
    """
    outcome = Outcome.CAPPED if capped else Outcome.MAILED
    mail = None if capped else confirmation_template(config, req.language).for_address(req.address.email)
    nonce = new_nonce()
    subscriber = {
        "email": req.address.email, "email_hash": req.address.hash, "status": SubscriberStatus.PENDING,
        "language": req.language, "topics": req.topics, "confirm_nonce": nonce,
        "created_at": now, "updated_at": now, "confirm_requested_at": now,
        "confirmations_sent": [] if capped else [now.isoformat()],
    }
    signup_event = _signup_event(None, req, outcome, now)
    conn = session.connection()
    try:
        subscriber_id = conn.execute(INSERT_SUBSCRIBER, [subscriber]).scalar_one()
    except IntegrityError:
        # A concurrent request inserted the same address first: its row decides.
        session.rollback()
        return signup(session, config, req, now)
    if mail is not None:
        conn.execute(INSERT_MAIL, [mail.values(config, subscriber_id, nonce)])
    signup_event["subscriber_id"] = subscriber_id
    conn.execute(INSERT_EVENT, [signup_event])
    return outcome


def _queue(session: Session, mail: dict[str, Any]) -> None:
    """Put a rendered mail in the outbox."""
    session.connection().execute(INSERT_MAIL, [mail])


def _signup_event(subscriber_id: int | None, req: SignupRequest, outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The consent event of a signup request, whatever its outcome."""
    if outcome is Outcome.CAPPED:
        log.error("confirmation mail not sent: CONFIRM_MAILS_PER_HOUR reached")
    return consent.event(
        subscriber_id, req.address.hash, consent.SIGNUP, req.channel, req.origin,
        language=req.language,
        text_version=consent.text_version(req.consent_text, req.language),
        details={"outcome": str(outcome), "topics": req.topics, "consent_text": req.consent_text},
        now=now,
    )


def _claim(session: Session, subscriber: Subscriber, req: SignupRequest, now: datetime) -> str | None:
    """Start a fresh pending signup on an existing row; its new nonce, or None
    if another request just did.

    A new nonce voids the links of earlier signups. The row is updated only
    if its nonce is still the one read: of two concurrent requests for one
    address, one mails and the other counts as throttled.
    """
    values: dict[str, Any] = {
        "confirm_nonce": new_nonce(),
        "confirmations_sent": [m.isoformat() for m in recent_sends(subscriber, now)] + [now.isoformat()],
        "confirm_requested_at": now,
        "topics": req.topics,
        "language": req.language,
        "email": req.address.email,  # back on an erased row: it is a new consent
        "updated_at": now,
    }
    changed = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id, Subscriber.confirm_nonce == subscriber.confirm_nonce)
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    for name, value in values.items():
        # Mirror the UPDATE on the object without making the ORM write it again.
        set_committed_value(subscriber, name, value)
    return str(values["confirm_nonce"])
