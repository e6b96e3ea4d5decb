"""A subscriber's life after signup: confirm, preferences, unsubscribe, erasure.

Only this package changes ``Subscriber.status``. Every function is
idempotent (a second call changes nothing and says so), appends to the
consent log what it changed, and leaves the commit to the caller.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from mailer.models import (
    ConsentAction,
    ConsentChannel,
    ConsentEvent,
    Delivery,
    OutboundMail,
    QueuedSignup,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.subscriptions import consent
from mailer.subscriptions.addresses import display_address, erased_hash
from mailer.subscriptions.signup import new_nonce
from mailer.topics import topic_name


class ConfirmResult(enum.StrEnum):
    """What a confirmation link did."""

    CONFIRMED = "confirmed"
    ALREADY = "already"  # confirmed before
    STALE = "stale"  # a link of an older signup, or of a purged or unsubscribed one


def confirm(
    session: Session, subscriber: Subscriber, nonce: str, origin: consent.Origin = consent.NOWHERE,
    now: datetime | None = None,
) -> ConfirmResult:
    """Confirm ``subscriber``'s pending signup if ``nonce`` is still its own.

    The nonce changes at every new signup and at unsubscribe, erasure and
    purge, so replaying an old link does nothing.
    """
    if subscriber.email is None:
        return ConfirmResult.STALE
    if subscriber.status is SubscriberStatus.CONFIRMED:
        # Any of the reader's links: nothing to do, and nothing to hide from
        # the owner of the mailbox.
        return ConfirmResult.ALREADY
    if subscriber.confirm_nonce != nonce:
        return ConfirmResult.STALE
    now = _mark_confirmed(subscriber, now)
    consent.record(session, subscriber, ConsentAction.CONFIRM, ConsentChannel.LINK, origin, now=now,
                   text_version=_consented_text(session, subscriber), details={"topics": subscriber.topics})
    return ConfirmResult.CONFIRMED


def _consented_text(session: Session, subscriber: Subscriber) -> str | None:
    """The consent text version of the signup a confirmation confirms (its latest signup or import)."""
    return session.scalar(
        select(ConsentEvent.consent_text_version)
        .where(ConsentEvent.subscriber_id == subscriber.id,
               ConsentEvent.action.in_([ConsentAction.SIGNUP, ConsentAction.IMPORT]))
        .order_by(ConsentEvent.id.desc()).limit(1)
    )


def _mark_confirmed(subscriber: Subscriber, now: datetime | None) -> datetime:
    """Make ``subscriber`` confirmed as of ``now`` (default: this instant); return that time."""
    now = now or utcnow()
    subscriber.status = SubscriberStatus.CONFIRMED
    subscriber.confirmed_at = now
    subscriber.unsubscribed_at = None
    subscriber.confirm_requested_at = None
    return now


def resubscribe(
    session: Session, subscriber: Subscriber, origin: consent.Origin = consent.NOWHERE, now: datetime | None = None,
) -> bool:
    """Subscribe again from the preferences page (its token was mailed to the
    reader, so it proves the address as a confirmation link does).

    Not after a complaint: that link was in the very mail reported as spam
    (and so in the provider's report); as Mailchimp does, a reader who
    complained comes back only through a new signup and its confirmation.
    """
    if subscriber.status in (SubscriberStatus.CONFIRMED, SubscriberStatus.COMPLAINED) or subscriber.email is None:
        return False
    now = _mark_confirmed(subscriber, now)
    consent.record(session, subscriber, ConsentAction.CONFIRM, ConsentChannel.LINK, origin, now=now,
                   text_version=_consented_text(session, subscriber),
                   details={"via": "preferences", "topics": subscriber.topics})
    return True


def unsubscribe(
    session: Session, subscriber: Subscriber, channel: ConsentChannel, origin: consent.Origin = consent.NOWHERE,
    now: datetime | None = None, reason: str | None = None,
) -> bool:
    """Unsubscribe at once; False when there was nothing to do.

    ``channel``: "link", "one-click", "admin", ... (see ``consent``). Any
    confirmation link still out stops working.
    """
    if subscriber.status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.ERASED):
        return False
    now = now or utcnow()
    previous = subscriber.status
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    subscriber.unsubscribed_at = now
    subscriber.confirm_nonce = new_nonce()
    subscriber.confirm_requested_at = None
    details: dict[str, Any] = {"previous_status": str(previous)}
    if reason:
        details["reason"] = reason[:500]
    consent.record(session, subscriber, ConsentAction.UNSUBSCRIBE, channel, origin, now=now, details=details)
    return True


def update_preferences(
    session: Session, subscriber: Subscriber, topics: str, language: str,
    origin: consent.Origin = consent.NOWHERE, now: datetime | None = None,
) -> bool:
    """Save topics (normalised) and language; False when nothing changed."""
    if subscriber.topics == topics and subscriber.language == language:
        return False
    before = {"topics": subscriber.topics, "language": subscriber.language}
    subscriber.topics, subscriber.language = topics, language
    consent.record(session, subscriber, ConsentAction.PREFERENCES, ConsentChannel.LINK, origin, now=now,
                   details={"before": before, "after": {"topics": topics, "language": language}})
    return True


def erase(
    session: Session, subscriber: Subscriber, channel: ConsentChannel, origin: consent.Origin = consent.NOWHERE,
    now: datetime | None = None, secret_key: str | None = None,
) -> Subscriber | None:
    """Erase a reader's personal data (GDPR art. 17); the row that stays, or None if already erased.

    What stays: a new row with nothing but a keyed hash of the address
    (``addresses.erased_hash``: so that an import cannot re-add it without a
    new consent, while nobody without the secret key can tell whose it
    was), under a new id. Every
    link ever mailed to the reader carries the old id, so none of them works
    again, even once the same address signs up anew. The consent log keeps
    its actions and times under the hash, without IP, user agent, pages or
    details, and no longer linked to any row: a later signup of the address
    starts a history of its own. The digests' delivery rows move to the new
    row, so their figures stay, without the SMTP replies that quote the
    address. ``origin`` is not stored: an erasure request must not leave new
    personal data behind.
    """
    if subscriber.status is SubscriberStatus.ERASED and subscriber.email is None:
        return None
    now = now or utcnow()
    del origin  # deliberately unused, see above
    old_id, email_hash = subscriber.id, subscriber.email_hash
    kept_hash = erased_hash(email_hash, secret_key or current_app.config["SECRET_KEY"])
    consent.scrub(session, email_hash, kept_hash)
    # Transactional mails and SMTP replies quote the address.
    session.execute(delete(OutboundMail).where(OutboundMail.subscriber_id == old_id))
    # A signup typed in before this erasure and not yet applied (normally
    # milliseconds) must not bring the address back after it: its queued row
    # goes, and a batch that already holds it skips it (signup.plan_batch).
    session.execute(delete(QueuedSignup).where(QueuedSignup.email_hash == email_hash,
                                               QueuedSignup.claimed_by.is_(None)))
    # The hash moves to the new row: free it on the old one first (it is unique).
    subscriber.email, subscriber.email_hash = None, f"erasing-{old_id}"
    try:
        session.flush()
    except StaleDataError:
        # Erased a moment ago by another request (a double click, the admin at
        # the same time): the row is gone already, and so is everything else.
        session.rollback()
        return None
    # Nothing of the reader's choices either: the language is the column's default.
    kept = Subscriber(email=None, email_hash=kept_hash, status=SubscriberStatus.ERASED, topics="",
                      confirm_nonce=new_nonce(), confirmations_sent=[], created_at=now, updated_at=now,
                      unsubscribed_at=now)
    session.add(kept)
    session.flush()
    session.execute(update(Delivery).where(Delivery.subscriber_id == old_id).values(
        subscriber_id=kept.id, last_reply=None), execution_options={"synchronize_session": False})
    session.execute(update(ConsentEvent).where(ConsentEvent.subscriber_id == old_id).values(subscriber_id=None),
                    execution_options={"synchronize_session": False})
    session.execute(delete(Subscriber).where(Subscriber.id == old_id), execution_options={"synchronize_session": False})
    session.expunge(subscriber)
    session.connection().execute(consent.INSERT_EVENT, [consent.event(
        None, kept_hash, ConsentAction.ERASURE, channel, now=now)])
    return kept


def personal_data(config: Mapping[str, Any], subscriber: Subscriber) -> dict[str, Any]:
    """Everything kept about ``subscriber``, for "download my data" (art. 15/20)."""

    def stamp(moment: datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") + "Z" if moment else None

    slugs = [slug for slug in subscriber.topics.split(",") if slug]
    return {
        "subscriber": {
            "email": display_address(subscriber.email) if subscriber.email else None,
            "status": str(subscriber.status),
            "language": subscriber.language,
            "topics": [{"slug": s, "name": topic_name(config["TOPICS"], s, subscriber.language)} for s in slugs]
            or "all",
            "created_at": stamp(subscriber.created_at),
            "confirmed_at": stamp(subscriber.confirmed_at),
            "unsubscribed_at": stamp(subscriber.unsubscribed_at),
            "confirmation_requested_at": stamp(subscriber.confirm_requested_at),
            # Stored as naive UTC ISO times: shown like the others, with their Z.
            "confirmation_mails_sent": [stamp(datetime.fromisoformat(sent))
                                        for sent in subscriber.confirmations_sent or []],
            "last_signup_at": stamp(subscriber.last_signup_at),
        },
        "consent_log": [consent.describe(event) for event in subscriber.consent_events],
        "controller": {"name": config["SITE_NAME"], "address": config["POSTAL_ADDRESS"]},
        "generated_at": stamp(utcnow()),
    }
