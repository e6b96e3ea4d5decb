"""Helpers for the subscription tests: post the signup form as a person would."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import create_app
from mailer.db import get_engine
from mailer.models import ConsentEvent, OutboundMail, Subscriber
from mailer.subscriptions.forms import form_timestamp

LINK = re.compile(r"http://newsletter\.test(/confirm/[A-Za-z0-9_.\-]+)")


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


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser that prefers English (the site's default is Italian), to read our msgids."""
    return english(app.test_client())


def english(client: FlaskClient) -> FlaskClient:
    """Make ``client`` send ``Accept-Language: en`` by default."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def make_app(database_url: str, smtp_server: Any, tmp_path: Any) -> Iterator[Any]:
    """Build an app of the test's own (rate limits or CSRF on, other settings)."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        config = {
            "ENV": "testing", "DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
            "SMTP_URL": smtp_server.url, "FEEDS": [], "BASE_URL": "http://newsletter.test",
            "FROM": "Notizie Tech <newsletter@example.it>", "CAPTURE_MAILDIR": str(tmp_path / "captured"),
        }
        config.update(overrides)
        app = create_app(config)
        apps.append(app)
        return app

    yield build
    for app in apps:
        get_engine(app).dispose()
