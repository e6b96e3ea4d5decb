"""No timing gap by design: the request only queues, the same way for every address.

Wall time is not asserted (the machine is shared; ``bench/signup.py``
measures it). What is asserted is what makes it equal: whatever the
address's state, ``POST /api/subscribe`` runs one statement in the request,
the INSERT of its ``signup_queue`` row, and answers the same bytes; what the
address gets is decided after the answer, by the signup worker's thread,
and is checked here too.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text, update
from sqlalchemy.orm import Session

from mailer.db import get_engine
from mailer.models import Subscriber, SubscriberStatus, utcnow
from mailer.subscriptions.signup import Outcome
from mailer.tokens import read_confirm_token
from tests.subscriptions.conftest import confirm_path, events, mails, signup_at, subscriber
from tests.subscriptions.test_limits import request_for

VERB_TABLE = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)?", re.IGNORECASE)


@contextmanager
def recorded(app: Flask) -> Iterator[list[tuple[str, str, int]]]:
    """(verb, table, rows written) of every statement this thread (the request) runs meanwhile."""
    statements: list[tuple[str, str, int]] = []
    me = threading.get_ident()  # not the outbox thread's, which sends the mails meanwhile

    def after(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() != me:
            return
        match = VERB_TABLE.match(statement)
        verb = match.group(1).upper() if match else statement.split()[0].upper()
        if verb in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
            return
        table = (match.group(2) or "") if match and verb != "SELECT" else ""
        # Rows changed by an UPDATE (an INSERT's rows are counted in the tables:
        # with RETURNING, as on PostgreSQL, its rowcount is not known here).
        statements.append((verb, table, cursor.rowcount if verb == "UPDATE" else 0))

    engine = get_engine(app)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield statements
    finally:
        event.remove(engine, "after_cursor_execute", after)


TABLES = ("subscribers", "outbound_mails", "consent_events", "signup_queue")


def row_counts(session: Session) -> dict[str, int]:
    """How many rows each table of a signup holds."""
    session.commit()
    return {table: int(session.scalar(text(f"SELECT COUNT(*) FROM {table}")) or 0) for table in TABLES}


def api_signup(client: FlaskClient, email: str, ip: str = "127.0.0.1") -> bytes:
    """One signup through the JSON API, from ``ip``; every address gets the same answer."""
    response = client.post("/api/subscribe", json={"email": email, "consent": True}, environ_base={"REMOTE_ADDR": ip})
    assert response.status_code == 202
    assert response.get_json()["status"] == "accepted"
    return response.get_data()


def prepare(app: Flask, session: Session) -> None:
    """Known addresses in every state, their last mail an hour ago (so not throttled)."""
    an_hour_ago = utcnow() - timedelta(hours=1)
    for email in ("pending@example.it", "confirmed@example.it", "unsubscribed@example.it", "recent@example.it"):
        signup_at(app, request_for(app, email), an_hour_ago)
    # "recent" was mailed a minute ago: the next request is throttled.
    signup_at(app, request_for(app, "recent@example.it"), utcnow() - timedelta(minutes=1))
    for state in (SubscriberStatus.CONFIRMED, SubscriberStatus.UNSUBSCRIBED):
        session.execute(update(Subscriber).where(Subscriber.email == f"{state}@example.it").values(status=state))
    session.commit()


def test_every_state_runs_the_same_request(app: Flask, client: FlaskClient, session: Session) -> None:
    """Whatever the address, and whatever the budget does with its mail (sent, held, dropped)."""
    prepare(app, session)
    runs: dict[str, list[tuple[str, str, int]]] = {}
    answers: dict[str, bytes] = {}
    added: dict[str, dict[str, int]] = {}

    def run(name: str, email: str, ip: str = "127.0.0.1") -> None:
        before = row_counts(session)
        with recorded(app) as statements:
            answers[name] = api_signup(client, email, ip)  # the client waits for the worker to apply it
        runs[name] = statements
        after = row_counts(session)
        added[name] = {table: after[table] - before[table] for table in TABLES}

    for name in ("new", "pending", "confirmed", "unsubscribed", "recent"):
        run(name, f"{name}@example.it")
    # One mail an hour per network: the second from 198.51.100.0/24 is dropped.
    app.config["CONFIRM_MAILS_PER_NETWORK_PER_HOUR"] = 1
    run("network-first", "network-first@example.it", "198.51.100.7")
    run("network-spent", "network-spent@example.it", "198.51.100.8")
    # The hourly cap reached: the mail waits; asked for again (20 minutes on) while it waits, no second one.
    app.config["CONFIRM_MAILS_PER_HOUR"] = len(mails(session))
    run("held", "held@example.it")
    twenty_minutes_ago = (utcnow() - timedelta(minutes=20)).isoformat()
    session.execute(update(Subscriber).where(Subscriber.email == "held@example.it")
                    .values(confirmations_sent=[twenty_minutes_ago]))
    session.commit()
    run("waiting", "held@example.it")
    # The cap would hold it past CONFIRM_MAX_WAIT_HOURS: dropped.
    app.config["CONFIRM_MAX_WAIT_HOURS"] = 0
    run("capped", "capped@example.it")

    # The request itself: one INSERT into the queue, the same answer.
    assert runs == {name: [("INSERT INTO", "signup_queue", 0)] for name in runs}
    assert len(set(answers.values())) == 1
    # Applied after the answer: the queue emptied, one consent event each, mail where due.
    for name in runs:
        mailed = name in ("new", "pending", "unsubscribed", "network-first", "held")
        new = name in ("new", "network-first", "network-spent", "held", "capped")
        assert added[name] == {"subscribers": int(new), "outbound_mails": int(mailed), "consent_events": 1,
                               "signup_queue": 0}, name
    addresses = {name: "held" if name == "waiting" else name for name in runs}
    outcomes = {name: events(session, subscriber(session, f"{addresses[name]}@example.it")
                             .email_hash)[-1 if name != "held" else -2].details["outcome"]
                for name in runs}
    assert outcomes == {
        "new": Outcome.MAILED, "pending": Outcome.MAILED, "confirmed": Outcome.ALREADY_CONFIRMED,
        "unsubscribed": Outcome.MAILED, "recent": Outcome.THROTTLED,
        "network-first": Outcome.MAILED, "network-spent": Outcome.NETWORK_SHARE,
        "held": Outcome.HELD, "waiting": Outcome.WAITING, "capped": Outcome.CAPPED,
    }
    # The held mail's link stays the one that works: the second request kept its nonce.
    held = mails(session, "held@example.it")
    assert len(held) == 1 and held[0].not_before > held[0].created_at
    with app.app_context():
        token = confirm_path(held[0]).removeprefix("/confirm/")
        assert read_confirm_token(token)[1] == subscriber(session, "held@example.it").confirm_nonce


def test_a_confirmed_reader_keeps_everything_but_the_attempt(app: Flask, client: FlaskClient,
                                                             session: Session) -> None:
    prepare(app, session)
    before = subscriber(session, "confirmed@example.it")
    kept = {column: getattr(before, column) for column in
            ("status", "language", "topics", "confirm_nonce", "confirmations_sent", "updated_at")}
    response = client.post("/api/subscribe", json={"email": "confirmed@example.it", "consent": True,
                                                   "topics": ["security"], "language": "it"})
    assert response.status_code == 202
    after = subscriber(session, "confirmed@example.it")
    assert {column: getattr(after, column) for column in kept} == kept
    assert after.last_signup_at is not None and after.last_signup_at > utcnow() - timedelta(minutes=1)
    assert session.scalar(text("SELECT COUNT(*) FROM outbound_mails WHERE to_address = 'confirmed@example.it'")) == 1
