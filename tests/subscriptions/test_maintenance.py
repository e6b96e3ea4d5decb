"""The purge of unconfirmed signups and the suppression of bounced addresses."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.models import (
    ConsentChannel,
    ConsentEvent,
    Delivery,
    Digest,
    DigestEdition,
    DigestStatus,
    OutboundMail,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.subscriptions import erase, purge_unconfirmed, suppress_bounced, unsubscribe
from mailer.subscriptions.addresses import email_hash, erased_hash
from tests.subscriptions.conftest import confirm_path, events, mails, subscribe, subscriber


def test_purge_deletes_old_unconfirmed_signups(app: Flask, client: FlaskClient, session: Session) -> None:
    subscribe(client, app, "old@example.it")
    subscribe(client, app, "confirmed@example.it")
    client.post(confirm_path(mails(session, "confirmed@example.it")[0]))
    old = subscriber(session, "old@example.it")
    old_hash, now = old.email_hash, utcnow()
    old.confirm_requested_at = now - timedelta(days=3)  # signed up three days ago
    session.commit()
    subscribe(client, app, "recent@example.it")
    assert purge_unconfirmed(session, app.config, now + timedelta(days=3, hours=23)) == 0  # not yet
    assert purge_unconfirmed(session, app.config, now + timedelta(days=4, minutes=1)) == 1
    session.commit()
    remaining = set(session.scalars(select(Subscriber.email)))
    assert remaining == {"confirmed@example.it", "recent@example.it"}
    assert session.scalar(select(func.count(OutboundMail.id)).where(OutboundMail.to_address == "old@example.it")) == 0
    log = events(session, old_hash)
    assert [e.action for e in log] == ["signup", "purge"]
    assert all(e.subscriber_id is None and e.ip is None and e.user_agent is None for e in log)


def test_purge_days_are_configurable(make_app, session: Session) -> None:
    app = make_app(PURGE_UNCONFIRMED_DAYS=2)
    client = app.test_client()
    subscribe(client, app, "old@example.it")
    link = confirm_path(mails(session)[0])
    assert purge_unconfirmed(session, app.config, utcnow() + timedelta(days=2, minutes=1)) == 1
    session.commit()
    assert client.post(link).status_code == 404


def test_a_new_signup_restarts_the_clock(app: Flask, client: FlaskClient, session: Session) -> None:
    subscribe(client, app, "mario@example.it")
    reader = subscriber(session, "mario@example.it")
    reader.confirm_requested_at = utcnow() - timedelta(days=6)
    reader.confirmations_sent = []
    session.commit()
    subscribe(client, app, "mario@example.it")
    assert purge_unconfirmed(session, app.config, utcnow() + timedelta(days=2)) == 0


def test_purge_withdraws_a_returning_readers_request(app: Flask, client: FlaskClient, session: Session) -> None:
    subscribe(client, app, "back@example.it")
    client.post(confirm_path(mails(session)[0]))
    unsubscribe(session, subscriber(session, "back@example.it"), ConsentChannel.LINK)
    session.commit()
    erase_me = "erased@example.it"
    subscribe(client, app, erase_me)
    with app.app_context():
        erase(session, subscriber(session, erase_me), ConsentChannel.ADMIN)
    session.commit()
    for reader in session.scalars(select(Subscriber)):
        reader.confirmations_sent = []
    session.commit()
    subscribe(client, app, "back@example.it")
    subscribe(client, app, erase_me)
    back_link = confirm_path(mails(session, "back@example.it")[-1])
    erased_link = confirm_path(mails(session, erase_me)[-1])
    assert purge_unconfirmed(session, app.config, utcnow() + timedelta(days=8)) == 2
    session.commit()
    back = subscriber(session, "back@example.it")
    assert back.status is SubscriberStatus.UNSUBSCRIBED and back.confirm_requested_at is None
    # Erased again, under the keyed hash only.
    erased = session.scalar(select(Subscriber).where(
        Subscriber.email_hash == erased_hash(email_hash(erase_me), app.config["SECRET_KEY"])))
    assert erased is not None and erased.email is None and erased.status is SubscriberStatus.ERASED
    assert client.post(back_link).status_code == 404
    assert client.post(erased_link).status_code == 404


def test_imported_pending_readers_are_not_purged(app: Flask, session: Session) -> None:
    import io

    from mailer.subscriptions import import_csv

    with app.app_context():
        import_csv(session, io.StringIO("email\nanna@example.it\n"))
    session.commit()
    assert purge_unconfirmed(session, app.config, utcnow() + timedelta(days=30)) == 0


def _delivery(session: Session, reader: Subscriber, *, bounce: bool, created_at) -> None:
    digest = Digest(period=f"p{session.scalar(select(func.count(Digest.id)))}", subject="s",
                    status=DigestStatus.FINISHED)
    session.add(digest)
    session.flush()
    edition = DigestEdition(digest_id=digest.id, topics="", language="en", subject="s", html="h", text="t")
    session.add(edition)
    session.flush()
    session.add(Delivery(digest_id=digest.id, subscriber_id=reader.id, edition_id=edition.id, bounce=bounce,
                         created_at=created_at))
    session.flush()


def test_suppress_bounced(app: Flask, client: FlaskClient, session: Session) -> None:
    for address in ("bounced@example.it", "fine@example.it", "fixed@example.it"):
        subscribe(client, app, address)
    for mail in mails(session):
        client.post(confirm_path(mail))
    now = utcnow()
    _delivery(session, subscriber(session, "bounced@example.it"), bounce=True, created_at=now + timedelta(days=1))
    _delivery(session, subscriber(session, "fine@example.it"), bounce=False, created_at=now + timedelta(days=1))
    # A bounce from before the reader subscribed again does not count.
    fixed = subscriber(session, "fixed@example.it")
    fixed.confirmed_at = now + timedelta(days=5)
    _delivery(session, fixed, bounce=True, created_at=now + timedelta(days=1))
    session.commit()
    assert suppress_bounced(session) == 1
    session.commit()
    assert subscriber(session, "bounced@example.it").status is SubscriberStatus.BOUNCED
    assert subscriber(session, "fine@example.it").status is SubscriberStatus.CONFIRMED
    assert subscriber(session, "fixed@example.it").status is SubscriberStatus.CONFIRMED
    last = events(session, subscriber(session, "bounced@example.it").email_hash)[-1]
    assert (last.action, last.channel) == ("bounce", "system")
    assert suppress_bounced(session) == 0  # already done
    assert session.scalar(select(func.count(ConsentEvent.id)).where(ConsentEvent.action == "bounce")) == 1


def test_bounced_reader_can_come_back(app: Flask, client: FlaskClient, session: Session) -> None:
    subscribe(client, app, "mario@example.it")
    client.post(confirm_path(mails(session)[0]))
    reader = subscriber(session, "mario@example.it")
    reader.confirmed_at = utcnow() - timedelta(hours=1)
    _delivery(session, reader, bounce=True, created_at=utcnow() - timedelta(minutes=30))
    session.commit()
    suppress_bounced(session)
    reader = subscriber(session, "mario@example.it")
    reader.confirmations_sent = []
    session.commit()
    subscribe(client, app, "mario@example.it")
    assert client.post(confirm_path(mails(session)[-1])).status_code == 200
    assert suppress_bounced(session) == 0
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.CONFIRMED
