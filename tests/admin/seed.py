"""Rows for the admin tests, written straight to the tables.

The admin only reads what the stages write, so its tests build the state
they need (readers, consent events, digests, deliveries, feeds) directly.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailer.models import (
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestEdition,
    DigestStatus,
    Feed,
    Subscriber,
    SubscriberStatus,
    utcnow,
)


def reader(
    session: Session,
    email: str,
    status: SubscriberStatus = SubscriberStatus.CONFIRMED,
    *,
    topics: str = "",
    language: str = "it",
    created_at: datetime | None = None,
    confirmed_at: datetime | None = None,
    unsubscribed_at: datetime | None = None,
    updated_at: datetime | None = None,
) -> Subscriber:
    """A subscriber (flushed), with a signup event in the consent log."""
    now = utcnow()
    created = created_at or now - timedelta(days=1)
    if confirmed_at is None and status is not SubscriberStatus.PENDING:
        confirmed_at = created
    if unsubscribed_at is None and status is SubscriberStatus.UNSUBSCRIBED:
        unsubscribed_at = now
    subscriber = Subscriber(
        email=email,
        email_hash=hashlib.sha256(email.encode()).hexdigest(),
        status=status,
        topics=topics,
        language=language,
        confirm_nonce=uuid.uuid4().hex,
        created_at=created,
        confirmed_at=confirmed_at,
        unsubscribed_at=unsubscribed_at,
        updated_at=updated_at or unsubscribed_at or confirmed_at or created,
    )
    session.add(subscriber)
    session.flush()
    session.add(ConsentEvent(
        subscriber_id=subscriber.id, email_hash=subscriber.email_hash, action="signup", channel="form",
        occurred_at=created, ip="203.0.113.7", user_agent="Mozilla/5.0 (test)", consent_text_version="ab" * 32,
        language=language, source_page="https://www.example.it/articolo", details={"topics": topics},
    ))
    session.flush()
    return subscriber


def digest(
    session: Session,
    period: str,
    status: DigestStatus = DigestStatus.FINISHED,
    *,
    subject: str | None = None,
    created_at: datetime | None = None,
) -> Digest:
    """A digest with one edition for every topic in Italian (flushed)."""
    made = Digest(
        period=period, subject=subject or f"Le notizie della settimana {period}", status=status,
        created_at=created_at or utcnow(), article_count=3,
        archive_html="<p>archive</p>", finished_at=utcnow() if status is DigestStatus.FINISHED else None,
    )
    session.add(made)
    session.flush()
    session.add(DigestEdition(digest_id=made.id, topics="", language="it", subject=made.subject,
                              html="<p>ciao</p>", text="ciao"))
    session.flush()
    return made


def delivery(
    session: Session,
    made: Digest,
    subscriber: Subscriber,
    status: DeliveryStatus = DeliveryStatus.SENT,
    *,
    bounce: bool = False,
    sent_at: datetime | None = None,
    reply: str | None = None,
) -> Delivery:
    """One delivery of ``made`` to ``subscriber`` (flushed)."""
    edition_id = made.editions[0].id if made.editions else session.query(DigestEdition.id).filter_by(
        digest_id=made.id).scalar()
    row = Delivery(
        digest_id=made.id, subscriber_id=subscriber.id, edition_id=edition_id, status=status, bounce=bounce,
        attempts=0 if status is DeliveryStatus.PENDING else 1, last_reply=reply,
        sent_at=(sent_at or made.created_at) if status is DeliveryStatus.SENT else None,
    )
    session.add(row)
    session.flush()
    return row


def feed(session: Session, url: str, **values: object) -> Feed:
    """A feed (flushed)."""
    made = Feed(url=url, **values)
    session.add(made)
    session.flush()
    return made
