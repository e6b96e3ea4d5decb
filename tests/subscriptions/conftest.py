"""Helpers for the subscription tests: post the signup form as a person would."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.db import get_engine
from mailer.models import ConsentEvent, OutboundMail, Subscriber
from mailer.subscriptions.forms import form_timestamp
from mailer.subscriptions.signup import SignupRequest, apply_queue, enqueue

LINK = re.compile(r"http://newsletter\.test(/confirm/[A-Za-z0-9_.\-]+)")
DATA_LINK = re.compile(r"http://newsletter\.test(/my-data/[A-Za-z0-9_.\-]+)")


def started(app: Flask, age: float = 30.0) -> str:
    """The form's signed timestamp, as if the page had been served ``age`` seconds ago."""
    with app.app_context(), mock.patch("itsdangerous.timed.time.time", return_value=time.time() - age):
        return form_timestamp()


def subscribe(client: FlaskClient, app: Flask, email: str, **fields: Any) -> Any:
    """POST /subscribe with a consenting, human-paced form."""
    data: dict[str, Any] = {"email": email, "consent": "y", "language": "en", "started": started(app)}
    data.update(fields)
    return client.post("/subscribe", data={k: v for k, v in data.items() if v is not None},
                       headers={"Accept-Language": "en", "Referer": "http://newsletter.test/"})


def signup_at(app: Flask, req: SignupRequest, now: datetime | None = None) -> str:
    """Queue ``req`` as received at ``now``, apply the queue at once; the request's outcome."""
    with app.app_context():
        enqueue(get_engine(app), req, now)
        apply_queue(app)
    with get_engine(app).connect() as conn:
        details = conn.scalars(select(ConsentEvent.details).where(ConsentEvent.email_hash == req.address.hash)
                               .order_by(ConsentEvent.id.desc()).limit(1)).one()
    return str(details["outcome"])


def subscriber(session: Session, email: str) -> Subscriber:
    """The row of ``email`` (normalised), fresh from the database."""
    session.flush()
    session.expire_all()
    found = session.scalar(select(Subscriber).where(Subscriber.email == email.lower()))
    assert found is not None, f"no subscriber {email}"
    return found


def mails(session: Session, email: str | None = None) -> list[OutboundMail]:
    """Confirmation mails queued (for ``email``)."""
    session.flush()
    session.expire_all()
    query = select(OutboundMail).order_by(OutboundMail.id)
    if email:
        query = query.where(OutboundMail.to_address == email.lower())
    return list(session.scalars(query))


def events(session: Session, email_hash: str) -> list[ConsentEvent]:
    """The consent log of one address, oldest first."""
    session.flush()
    session.expire_all()
    return list(session.scalars(select(ConsentEvent).where(ConsentEvent.email_hash == email_hash)
                                .order_by(ConsentEvent.id)))


def confirm_path(mail: OutboundMail) -> str:
    """The confirmation link's path, from the mail's text part (and the same in HTML)."""
    found = LINK.search(mail.text)
    assert found, mail.text
    assert found.group(0) in mail.html
    return found.group(1)


def data_path(client: FlaskClient, session: Session, preferences_path: str) -> str:
    """Ask for the "my data" link on the preferences page; its path, from the mail queued."""
    answer = client.post(preferences_path, data={"action": "data-link"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    session.expire_all()
    mail = session.scalars(select(OutboundMail).where(OutboundMail.kind == "data-link")
                           .order_by(OutboundMail.id.desc()).limit(1)).one()
    found = DATA_LINK.search(mail.text)
    assert found, mail.text
    assert found.group(0) in mail.html
    return found.group(1)


def delivered(smtp_server: Any, address: str, timeout: float = 10.0) -> list[Any]:
    """Wait for mail to ``address`` at the test SMTP server (other tests' outbox
    threads may still deliver theirs, so count only ours)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = smtp_server.to(address)
        if found:
            return list(found)
        time.sleep(0.02)
    raise AssertionError(f"no mail reached {address}")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser that prefers English (the site's default is Italian), to read our msgids."""
    return english(app.test_client())


def english(client: FlaskClient) -> FlaskClient:
    """Make ``client`` send ``Accept-Language: en`` by default."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client
