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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from mailer.models import OutboundMail, Subscriber, SubscriberStatus, utcnow
from mailer.subscriptions import consent
from mailer.subscriptions.addresses import Address
from mailer.subscriptions.mails import KIND, confirmation_mail

log = logging.getLogger("mailer.subscriptions")

# At most one confirmation per address per 10 minutes and 3 a day.
MAIL_INTERVAL = timedelta(minutes=10)
MAILS_PER_DAY = 3
DAY = timedelta(days=1)


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
    """Apply a signup request; the caller commits, then wakes the outbox."""
    now = now or utcnow()
    subscriber = _find_or_create(session, req, now)
    if subscriber.status is SubscriberStatus.CONFIRMED:
        outcome = Outcome.ALREADY_CONFIRMED
    elif _recently_mailed(subscriber, now):
        outcome = Outcome.THROTTLED
        if subscriber.status is SubscriberStatus.PENDING:
            # The reader is still there: the latest mailed link stays good,
            # and the purge counts from this request.
            subscriber.topics, subscriber.language = req.topics, req.language
            subscriber.confirm_requested_at = now
    elif _hourly_mails(session, now) >= int(config["CONFIRM_MAILS_PER_HOUR"]):
        outcome = Outcome.CAPPED
        log.error("confirmation mails capped at CONFIRM_MAILS_PER_HOUR=%s", config["CONFIRM_MAILS_PER_HOUR"])
    else:
        outcome = _mail_confirmation(session, config, subscriber, req, now)
    consent.record(
        session, subscriber, consent.SIGNUP, req.channel, req.origin,
        language=req.language,
        text_version=consent.text_version(req.consent_text, req.language),
        details={"outcome": str(outcome), "topics": req.topics, "consent_text": req.consent_text},
        now=now,
    )
    return outcome


def _find_or_create(session: Session, req: SignupRequest, now: datetime) -> Subscriber:
    """The subscriber of ``req.address``: an existing row, or a new pending one."""
    found = session.scalar(select(Subscriber).where(Subscriber.email_hash == req.address.hash))
    if found is not None:
        return found
    subscriber = Subscriber(
        email=req.address.email,
        email_hash=req.address.hash,
        status=SubscriberStatus.PENDING,
        language=req.language,
        topics=req.topics,
        confirm_nonce=new_nonce(),
        created_at=now,
        confirm_requested_at=now,
        confirmations_sent=[],
    )
    session.add(subscriber)
    try:
        session.flush()
    except IntegrityError:
        # A concurrent request inserted the same address first: use its row.
        session.rollback()
        found = session.scalar(select(Subscriber).where(Subscriber.email_hash == req.address.hash))
        if found is None:
            raise
        return found
    return subscriber


def _recent_sends(subscriber: Subscriber, now: datetime) -> list[datetime]:
    """When confirmations went to this address in the last day."""
    sent = [datetime.fromisoformat(stamp) for stamp in subscriber.confirmations_sent or []]
    return [moment for moment in sent if now - moment < DAY]


def _recently_mailed(subscriber: Subscriber, now: datetime) -> bool:
    """True when one more mail would break the per-address limits."""
    recent = _recent_sends(subscriber, now)
    return len(recent) >= MAILS_PER_DAY or any(now - moment < MAIL_INTERVAL for moment in recent)


def _hourly_mails(session: Session, now: datetime) -> int:
    """Confirmation mails queued in the last hour, all addresses together."""
    since = now - timedelta(hours=1)
    query = select(func.count(OutboundMail.id)).where(OutboundMail.kind == KIND, OutboundMail.created_at > since)
    return session.scalar(query) or 0


def _mail_confirmation(
    session: Session, config: Mapping[str, Any], subscriber: Subscriber, req: SignupRequest, now: datetime
) -> Outcome:
    """Start a fresh pending signup for ``subscriber`` and queue its mail.

    A new nonce voids the links of earlier signups. The row is updated only
    if its nonce is still the one read: of two concurrent requests for one
    address, one mails and the other counts as throttled.
    """
    sends = [m.isoformat() for m in _recent_sends(subscriber, now)] + [now.isoformat()]
    values: dict[str, Any] = {
        "confirm_nonce": new_nonce(),
        "confirmations_sent": sends,
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
        return Outcome.THROTTLED
    for name, value in values.items():
        # Mirror the UPDATE on the object without making the ORM write it again.
        set_committed_value(subscriber, name, value)
    session.add(confirmation_mail(config, subscriber, req.language))
    return Outcome.MAILED
