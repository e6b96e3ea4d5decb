"""What each reader link may do: unsubscribe, preferences, and the mailed "my data" link."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.models import OutboundMail, Subscriber, SubscriberStatus
from mailer.tokens import data_token, preferences_token, unsubscribe_token
from tests.smtp_sink import SmtpSink
from tests.subscriptions.conftest import (
    DATA_LINK,
    confirm_path,
    data_path,
    delivered,
    english,
    mails,
    subscribe,
    subscriber,
)

TOKEN_LINK = re.compile(r'href="([^"]*/(?:preferences|my-data|unsubscribe|confirm)/[^"]+)"')


@pytest.fixture
def reader(app: Flask, client: FlaskClient, session: Session) -> Subscriber:
    subscribe(client, app, "mario@example.it", language="en", topics=["ai"])
    client.post(confirm_path(mails(session)[0]))
    return subscriber(session, "mario@example.it")


def _path(app: Flask, make: Callable[..., str], reader_id: int, route: str) -> str:
    with app.app_context():
        return f"/{route}/{make(reader_id)}"


def _gets_data(client: FlaskClient, path: str) -> bool:
    """True if ``path`` hands out the reader's data or erases them."""
    download = client.post(path, data={"action": "download"})
    erase = client.post(path, data={"action": "erase", "confirm_erase": "yes"})
    return download.mimetype == "application/json" or b"Your data is deleted" in erase.data


def test_the_unsubscribe_link_reads_and_erases_nothing(app: Flask, client: FlaskClient, session: Session,
                                                       reader: Subscriber) -> None:
    """Neither the unsubscribe token, nor any link on the pages it opens, reaches the data."""
    path = _path(app, unsubscribe_token, reader.id, "unsubscribe")
    pages = [client.get(path).get_data(as_text=True)]
    one_click = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    pages.append(one_click.get_data(as_text=True))
    pages.append(client.get(path).get_data(as_text=True))
    handed_out = [link.replace("http://newsletter.test", "") for page in pages for link in TOKEN_LINK.findall(page)]
    assert not [link for link in handed_out if "/unsubscribe/" not in link], handed_out
    token = path.rsplit("/", 1)[1]
    for route in ("preferences", "my-data"):
        answer = client.post(f"/{route}/{token}", data={"action": "download"})
        assert answer.status_code in (400, 403, 404) and answer.mimetype == "text/html"
        assert not _gets_data(client, f"/{route}/{token}")
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.UNSUBSCRIBED


def test_the_preferences_link_asks_for_a_mailed_link_instead(app: Flask, client: FlaskClient, session: Session,
                                                             reader: Subscriber) -> None:
    path = _path(app, preferences_token, reader.id, "preferences")
    page = client.get(path).get_data(as_text=True)
    assert 'value="data-link"' in page and 'value="download"' not in page and 'value="erase"' not in page
    for action in ({"action": "download"}, {"action": "erase", "confirm_erase": "yes"}):
        refused = client.post(path, data=action)
        assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.CONFIRMED
    asked = client.post(path, data={"action": "data-link"})
    assert asked.status_code == 200
    assert "We have sent a link to mario@example.it" in asked.get_data(as_text=True)
    [mail] = session.scalars(select(OutboundMail).where(OutboundMail.kind == "data-link")).all()
    assert mail.to_address == "mario@example.it" and DATA_LINK.search(mail.text)


def test_the_mailed_link_arrives_works_and_dies(app: Flask, client: FlaskClient, session: Session,
                                               smtp_server: SmtpSink, reader: Subscriber) -> None:
    path = _path(app, preferences_token, reader.id, "preferences")
    client.post(path, data={"action": "save", "topics": ["ai"], "language": "it"})  # the reader reads Italian
    client.post(path, data={"action": "data-link"})
    message = _data_mail(smtp_server, "mario@example.it")
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "I tuoi dati" in message["Subject"] and "60 minuti" in text
    found = DATA_LINK.search(text)
    assert found and found.group(0) in html
    mine = found.group(1)
    # Within its life: the consent record, the download.
    page = client.get(mine)
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    assert "127.0.0.1" in page.get_data(as_text=True)  # the consent record shows where consent came from
    assert client.post(mine, data={"action": "download"}).get_json()["subscriber"]["email"] == "mario@example.it"
    # After its life (DATA_LINK_MINUTES, 60 by default): expired.
    later = time.time() + 61 * 60
    with mock.patch("itsdangerous.timed.time.time", return_value=later):
        expired = client.get(mine)
        assert expired.status_code == 404
        assert client.post(mine, data={"action": "download"}).status_code == 404
    # After the erasure it made: dead.
    assert client.post(mine, data={"action": "erase", "confirm_erase": "yes"}).status_code == 200
    assert client.get(mine).status_code == 404
    assert client.post(mine, data={"action": "download"}).status_code == 404


def test_the_mailed_link_dies_when_the_subscription_changes(app: Flask, client: FlaskClient, session: Session,
                                                            reader: Subscriber) -> None:
    path = _path(app, preferences_token, reader.id, "preferences")
    mine = data_path(client, session, path)
    assert client.get(mine).status_code == 200
    client.post(path, data={"action": "unsubscribe"})
    assert client.get(mine).status_code == 404
    assert client.post(mine, data={"action": "erase", "confirm_erase": "yes"}).status_code == 404
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.UNSUBSCRIBED
    # A new one, then the reader subscribes again: that one dies too.
    mine = data_path(client, session, path)
    assert client.get(mine).status_code == 200
    client.post(path, data={"action": "resubscribe"})
    assert client.get(mine).status_code == 404


def _data_mail(smtp_server: SmtpSink, address: str) -> Any:
    """The "my data" mail to ``address`` at the SMTP sink (its confirmation mail came first)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for received in delivered(smtp_server, address):
            if "/my-data/" in received.message.get_body(("plain",)).get_content():
                return received.message
        time.sleep(0.02)
    raise AssertionError(f"no data link reached {address}")


def test_a_forged_or_foreign_data_link_is_refused(app: Flask, client: FlaskClient, reader: Subscriber) -> None:
    with app.app_context():
        other_key = data_token(reader.id, reader.confirm_nonce, "confirmed", "another-key")
        stale_nonce = data_token(reader.id, "0" * 32, "confirmed")
    assert client.get(f"/my-data/{other_key}").status_code == 400
    assert client.get(f"/my-data/{stale_nonce}").status_code == 404


def test_data_links_are_rate_limited_per_reader(make_app: Callable[..., Flask], session: Session) -> None:
    app = make_app(RATELIMIT_ENABLED=True, DATA_LINK_LIMIT="2/hour", RATELIMIT_STORAGE="memory",
                   SIGNUP_LIMIT="100/minute")
    client = english(app.test_client())
    subscribe(client, app, "anna@example.it")
    client.post(confirm_path(mails(session)[0]))
    path = _path(app, preferences_token, subscriber(session, "anna@example.it").id, "preferences")
    answers = [client.post(path, data={"action": "data-link"}) for _ in range(4)]
    assert {a.status_code for a in answers} == {200}
    # The same answer every time, whether mailed or not.
    assert len({a.get_data(as_text=True) for a in answers}) == 1
    session.expire_all()
    assert session.scalar(select(func.count(OutboundMail.id)).where(OutboundMail.kind == "data-link")) == 2


def test_old_links_keep_working_for_what_they_may_still_do(app: Flask, client: FlaskClient, session: Session,
                                                           reader: Subscriber) -> None:
    """Tokens mailed in past digests, made by the stock serializer as before: one-click and preferences work."""
    secret = app.config["SECRET_KEY"]
    old_unsubscribe = URLSafeSerializer(secret, salt="mailer.unsubscribe").dumps(reader.id)
    old_preferences = URLSafeSerializer(secret, salt="mailer.preferences").dumps(reader.id)
    assert client.get(f"/preferences/{old_preferences}").status_code == 200
    answer = client.post(f"/unsubscribe/{old_unsubscribe}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.UNSUBSCRIBED
    assert client.post(f"/preferences/{old_preferences}", data={"action": "resubscribe"}).status_code == 200
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.CONFIRMED
