"""Digests, editions, readers and deliveries inserted directly, as digest/ would.

The delivery tests do not depend on composing a digest: they build the rows
``compose_digest`` would leave behind (a sending digest, its editions with
the token placeholders, one pending delivery per reader).
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from mailer.digest import PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestEdition,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

_periods = itertools.count(1)

TEXT = (
    "Le notizie della settimana — perché è così?\n\n"
    ". A line that starts with a dot\n"
    "Leggi tutto: http://newsletter.test/archive/1\n\n"
    f"Disiscriviti: http://newsletter.test/unsubscribe/{UNSUBSCRIBE_TOKEN}\n"
    f"Preferenze: http://newsletter.test/preferences/{PREFERENCES_TOKEN}\n"
)
HTML = (
    "<!DOCTYPE html>\n<html lang=\"it\"><head><meta charset=\"utf-8\"><title>Notizie</title></head>\n"
    "<body style=\"margin:0;padding:0\">\n<h1 style=\"font-family:Georgia,serif\">Le notizie — àèìòù €</h1>\n"
    "<p>Un articolo = molto interessante.</p>\n.\n"
    f"<p><a href=\"http://newsletter.test/unsubscribe/{UNSUBSCRIBE_TOKEN}\">Disiscriviti</a> · "
    f"<a href=\"http://newsletter.test/preferences/{PREFERENCES_TOKEN}\">Preferenze</a></p>\n"
    "</body></html>\n"
)


@dataclass
class Fixture:
    """What ``make_digest`` inserted."""

    digest_id: int
    edition_id: int
    readers: list[int]
    emails: list[str]


def add_readers(session: Session, emails: Sequence[str], status: SubscriberStatus = SubscriberStatus.CONFIRMED,
                language: str = "it") -> list[int]:
    """Insert subscribers in bulk; return their ids in order."""
    session.execute(insert(Subscriber), [
        {"email": email, "email_hash": hashlib.sha256(email.encode()).hexdigest(), "status": status,
         "language": language, "topics": "", "confirm_nonce": uuid.uuid4().hex, "confirmations_sent": []}
        for email in emails
    ])
    found = {row.email: row.id for row in session.execute(
        select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(emails)))}
    return [found[email] for email in emails]


def make_digest(session: Session, count: int = 3, *, emails: Sequence[str] | None = None,
                subject: str = "Le notizie della settimana – 25 novembre", text: str = TEXT, html: str = HTML,
                status: DigestStatus = DigestStatus.SENDING, domain: str = "example.org") -> Fixture:
    """A sending digest with one edition and a pending delivery per new reader; committed."""
    number = next(_periods)
    emails = list(emails) if emails is not None else [f"reader{number}-{i}@{domain}" for i in range(count)]
    readers = add_readers(session, emails)
    digest = Digest(period=f"T-{number}-{uuid.uuid4().hex[:6]}", subject=subject, status=status,
                    created_at=utcnow(), archive_html="", article_count=3)
    session.add(digest)
    session.flush()
    edition = DigestEdition(digest_id=digest.id, topics="", language="it", subject=subject, html=html, text=text)
    session.add(edition)
    session.flush()
    now = utcnow()
    if readers:
        session.execute(insert(Delivery), [
            {"digest_id": digest.id, "subscriber_id": sid, "edition_id": edition.id,
             "status": DeliveryStatus.PENDING, "attempts": 0, "bounce": False, "created_at": now}
            for sid in readers
        ])
    session.commit()
    return Fixture(digest.id, edition.id, readers, emails)


def statuses(session: Session, digest_id: int) -> dict[str, DeliveryStatus]:
    """Each reader's delivery status, by address."""
    session.expire_all()
    rows = session.execute(
        select(Subscriber.email, Delivery.status).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.digest_id == digest_id)
    ).all()
    return {email: DeliveryStatus(status) for email, status in rows}


def delivery(session: Session, digest_id: int, email: str) -> Delivery:
    """The delivery row of ``email`` in the digest, fresh from the database."""
    session.expire_all()
    row = session.scalars(
        select(Delivery).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.digest_id == digest_id, Subscriber.email == email)
    ).one()
    return row


def digest_row(session: Session, digest_id: int) -> Digest:
    """The digest, fresh from the database."""
    session.expire_all()
    found = session.get(Digest, digest_id)
    assert found is not None
    return found
