"""What erasure keeps of an address: a keyed hash, never its plain sha256."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import cast

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Table, create_engine, insert, select
from sqlalchemy.orm import Session

from mailer import migrate
from mailer.models import ConsentChannel, ConsentEvent, Subscriber, utcnow
from mailer.subscriptions import erase, purge_unconfirmed
from mailer.subscriptions.addresses import erased_hash
from tests.subscriptions.conftest import confirm_path, mails, subscribe, subscriber

ADDRESS = "mario@example.it"
PLAIN = hashlib.sha256(ADDRESS.encode()).hexdigest()  # what `printf %s mario@example.it | sha256sum` prints

SUBSCRIBERS = cast(Table, Subscriber.__table__)
EVENTS = cast(Table, ConsentEvent.__table__)


def test_the_kept_hash_is_keyed(app: Flask, client: FlaskClient, session: Session) -> None:
    subscribe(client, app, ADDRESS)
    client.post(confirm_path(mails(session)[0]))
    with app.app_context():
        kept = erase(session, subscriber(session, ADDRESS), ConsentChannel.ADMIN)
    session.commit()
    assert kept is not None
    stored = {*session.scalars(select(Subscriber.email_hash)), *session.scalars(select(ConsentEvent.email_hash))}
    assert PLAIN not in stored
    assert stored == {erased_hash(PLAIN, app.config["SECRET_KEY"])}
    # Another key gives another hash: without the key, nothing to match a list of addresses against.
    assert erased_hash(PLAIN, "another-key") not in stored


def test_an_erased_address_is_still_recognised(app: Flask, client: FlaskClient, session: Session) -> None:
    """A signup of an erased address reuses its row (history kept apart), as before the keyed hash."""
    subscribe(client, app, ADDRESS)
    client.post(confirm_path(mails(session)[0]))
    with app.app_context():
        kept = erase(session, subscriber(session, ADDRESS), ConsentChannel.ADMIN)
        assert kept is not None
        kept_id = kept.id
    session.commit()
    subscribe(client, app, ADDRESS)
    again = subscriber(session, ADDRESS)
    assert again.id == kept_id and again.email_hash == PLAIN


def test_migration_converts_rows_erased_with_the_plain_hash(app: Flask, tmp_path: Path) -> None:
    """Rows erased before 0011 get the keyed hash; their consent events move with them."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate.upgrade(url, "0007")
    engine = create_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(SUBSCRIBERS).values(
            email=None, email_hash=PLAIN, status="erased", language="it", topics="", confirm_nonce="n" * 32,
            created_at=now, updated_at=now, unsubscribed_at=now, confirmations_sent=[]))
        live = hashlib.sha256(b"anna@example.it").hexdigest()
        conn.execute(insert(SUBSCRIBERS).values(
            email="anna@example.it", email_hash=live, status="confirmed", language="it", topics="",
            confirm_nonce="m" * 32, created_at=now, updated_at=now, confirmations_sent=[]))
        for action in ("signup", "confirm", "erasure"):
            conn.execute(insert(EVENTS).values(
                subscriber_id=None, email_hash=PLAIN, action=action, channel="link", occurred_at=now, details={}))
    with app.app_context():
        migrate.upgrade(url)
    keyed = erased_hash(PLAIN, app.config["SECRET_KEY"])
    with engine.connect() as conn:
        hashes = dict(conn.execute(select(SUBSCRIBERS.c.status, SUBSCRIBERS.c.email_hash)).tuples().all())
        events = conn.execute(select(EVENTS.c.email_hash)).scalars().all()
    engine.dispose()
    assert hashes == {"erased": keyed, "confirmed": live}  # a live reader keeps the plain one
    assert events == [keyed] * 3


def test_a_withdrawn_signup_of_an_erased_address_leaves_no_plain_hash(app: Flask, client: FlaskClient,
                                                                      session: Session) -> None:
    """Erased, signed up again, never confirmed, purged: the row is erased again, under the keyed hash."""
    subscribe(client, app, ADDRESS)
    client.post(confirm_path(mails(session)[0]))
    with app.app_context():
        erase(session, subscriber(session, ADDRESS), ConsentChannel.ADMIN)
    session.commit()
    subscribe(client, app, ADDRESS)
    assert purge_unconfirmed(session, app.config, utcnow() + timedelta(days=30)) == 1
    session.commit()
    keyed = erased_hash(PLAIN, app.config["SECRET_KEY"])
    rows = session.execute(select(Subscriber.email, Subscriber.email_hash)).all()
    assert [tuple(row) for row in rows] == [(None, keyed)]
    events = session.execute(select(ConsentEvent.email_hash, ConsentEvent.ip)).all()
    assert {tuple(event) for event in events} == {(keyed, None)}
