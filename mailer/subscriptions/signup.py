"""Signup: the rules behind ``POST /subscribe`` and ``POST /api/subscribe``.

Whatever the address's state, the caller answers the same thing; only what
happens behind differs. A new, pending, unsubscribed, bounced or erased
address gets a (fresh) confirmation mail, within the mail-bombing limits; a
confirmed one gets nothing and keeps its settings, since anybody can type
anybody's address into the form. Every request writes one consent event, and
runs the same statements whatever the address's state (see ``signup``), so
that its timing says nothing about the address.

This is the path a viral article takes thousands of times a minute, so it
runs plain Core statements built once (building a statement and its cache
key per request, or the ORM's unit of work, would cost several times what
the database takes), and prepares everything before its first write: on
SQLite a transaction holds the write lock, for the whole database, from its
first write to its commit.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Boolean, Row, Table, bindparam, func, insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.models import Subscriber, SubscriberStatus, utcnow
from mailer.subscriptions import consent
from mailer.subscriptions.addresses import Address
from mailer.subscriptions.consent import INSERT_EVENT
from mailer.subscriptions.mails import ConfirmationTemplate, confirmation_template
from mailer.subscriptions.throttle import OUTBOX, hourly_cap_reached, recent_sends, recently_mailed

log = logging.getLogger("mailer.subscriptions")

SUBSCRIBERS = cast(Table, Subscriber.__table__)
_ONE = select(literal(1).label("one")).subquery()
# One round trip: the address's row if any, and the outbox's newest id (for the hourly cap).
LOOKUP = select(
    select(func.max(OUTBOX.c.id)).scalar_subquery().label("newest_id"),
    SUBSCRIBERS.c.id, SUBSCRIBERS.c.status, SUBSCRIBERS.c.confirm_nonce, SUBSCRIBERS.c.confirmations_sent,
).select_from(_ONE.outerjoin(SUBSCRIBERS, SUBSCRIBERS.c.email_hash == bindparam("email_hash")))
INSERT_SUBSCRIBER = insert(SUBSCRIBERS).returning(SUBSCRIBERS.c.id)
# The outbox statement runs at every signup, so that every one costs the
# same; it inserts its row only when the mail goes (``send``).
MAIL_COLUMNS = ("subscriber_id", "kind", "to_address", "subject", "html", "text", "created_at", "attempts")
INSERT_MAIL = insert(OUTBOX).from_select(
    MAIL_COLUMNS,
    select(*(bindparam(name, type_=OUTBOX.c[name].type).label(name) for name in MAIL_COLUMNS))
    .where(bindparam("send", type_=Boolean)),
)
# A known reader whose signup changes nothing (confirmed, throttled, capped):
# the row still records the attempt, as a new signup writes its row.
# (``updated_at`` kept: its onupdate would otherwise say the settings changed.)
TOUCH = update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == bindparam("subscriber_id")).values(
    last_signup_at=bindparam("now"), updated_at=SUBSCRIBERS.c.updated_at)
# A pending reader asking again: new choices, and the purge counts from now.
RENEW = update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == bindparam("subscriber_id")).values(
    topics=bindparam("topics"), language=bindparam("language"),
    confirm_requested_at=bindparam("now"), updated_at=bindparam("now"), last_signup_at=bindparam("now"))
# A fresh pending signup on a known row, only if its nonce is still the one read.
CLAIM = update(SUBSCRIBERS).where(
    SUBSCRIBERS.c.id == bindparam("subscriber_id"), SUBSCRIBERS.c.confirm_nonce == bindparam("old_nonce"),
).values(
    confirm_nonce=bindparam("nonce"), confirmations_sent=bindparam("sent"), confirm_requested_at=bindparam("now"),
    topics=bindparam("topics"), language=bindparam("language"), email=bindparam("email"), updated_at=bindparam("now"),
    last_signup_at=bindparam("now"),
)


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
    """Apply a signup request; the caller commits at once, then wakes the outbox if MAILED.

    Whatever the address's state, the same four statements run (look up;
    write the subscriber row; the outbox statement; the consent event) and
    the mail is built and its token signed: what differs is only whether
    the outbox statement inserts its row.
    """
    now = now or utcnow()
    conn = session.connection()
    row = conn.execute(LOOKUP, {"email_hash": req.address.hash}).one()
    capped = hourly_cap_reached(conn, config, row.newest_id, now)
    mail = confirmation_template(config, req.language).for_address(req.address.email)
    if row.id is None:
        return _new_signup(session, conn, config, req, now, capped, mail)
    return _known_signup(conn, config, req, now, capped, row, mail)


def _new_signup(
    session: Session, conn: Connection, config: Mapping[str, Any], req: SignupRequest, now: datetime, capped: bool,
    mail: ConfirmationTemplate,
) -> Outcome:
    """A first signup for the address: a pending subscriber, its mail, its event."""
    outcome = Outcome.CAPPED if capped else Outcome.MAILED
    nonce = new_nonce()
    subscriber = {
        "email": req.address.email, "email_hash": req.address.hash, "status": SubscriberStatus.PENDING,
        "language": req.language, "topics": req.topics, "confirm_nonce": nonce,
        "created_at": now, "updated_at": now, "confirm_requested_at": now, "last_signup_at": now,
        "confirmations_sent": [] if capped else [now.isoformat()],
    }
    try:
        subscriber_id = conn.execute(INSERT_SUBSCRIBER, [subscriber]).scalar_one()
    except IntegrityError:
        # A concurrent request inserted the same address first: its row decides.
        session.rollback()
        return signup(session, config, req, now)
    return _queue_and_log(conn, config, req, now, outcome, subscriber_id, nonce, mail)


def _known_signup(
    conn: Connection, config: Mapping[str, Any], req: SignupRequest, now: datetime, capped: bool, row: Row[Any],
    mail: ConfirmationTemplate,
) -> Outcome:
    """A signup for an address we have: pending, confirmed, unsubscribed, bounced or erased."""
    status = SubscriberStatus(row.status)
    nonce = row.confirm_nonce
    if status is SubscriberStatus.CONFIRMED:
        outcome = Outcome.ALREADY_CONFIRMED
    elif recently_mailed(row.confirmations_sent, now):
        outcome = Outcome.THROTTLED
    elif capped:
        outcome = Outcome.CAPPED
    else:
        nonce = new_nonce()
        sent = [moment.isoformat() for moment in recent_sends(row.confirmations_sent, now)] + [now.isoformat()]
        # A new nonce voids the links of earlier signups. Of two concurrent
        # requests for one address, the one whose nonce is stale mails nothing.
        claimed = conn.execute(CLAIM, {
            "subscriber_id": row.id, "old_nonce": row.confirm_nonce, "nonce": nonce, "sent": sent, "now": now,
            "topics": req.topics, "language": req.language,
            "email": req.address.email,  # back on an erased row: it is a new consent
        }).rowcount
        outcome = Outcome.MAILED if claimed == 1 else Outcome.THROTTLED
        return _queue_and_log(conn, config, req, now, outcome, row.id, nonce, mail)
    if outcome is Outcome.THROTTLED and status is SubscriberStatus.PENDING:
        # Still the same reader: the latest mailed link stays good.
        conn.execute(RENEW, {"subscriber_id": row.id, "topics": req.topics, "language": req.language, "now": now})
    else:
        conn.execute(TOUCH, {"subscriber_id": row.id, "now": now})
    return _queue_and_log(conn, config, req, now, outcome, row.id, nonce, mail)


def _queue_and_log(
    conn: Connection, config: Mapping[str, Any], req: SignupRequest, now: datetime, outcome: Outcome,
    subscriber_id: int, nonce: str, mail: ConfirmationTemplate,
) -> Outcome:
    """The last two statements of every signup: the outbox row (if MAILED) and the consent event."""
    conn.execute(INSERT_MAIL, [{**mail.values(config, subscriber_id, nonce), "send": outcome is Outcome.MAILED}])
    conn.execute(INSERT_EVENT, [{**_signup_event(req, outcome, now), "subscriber_id": subscriber_id}])
    return outcome


def _signup_event(req: SignupRequest, outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The consent event of a signup request, whatever its outcome."""
    if outcome is Outcome.CAPPED:
        log.error("confirmation mail not sent: CONFIRM_MAILS_PER_HOUR reached")
    return consent.event(
        None, req.address.hash, consent.SIGNUP, req.channel, req.origin,
        language=req.language,
        text_version=consent.text_version(req.consent_text, req.language),
        details={"outcome": str(outcome), "topics": req.topics, "consent_text": req.consent_text},
        now=now,
    )
