"""The links in mails: GET shows a page and changes nothing, POST acts, bad tokens are refused."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from mailer.models import ConsentEvent, Subscriber, SubscriberStatus, utcnow
from mailer.subscriptions import purge_unconfirmed
from mailer.tokens import confirm_token, preferences_token, unsubscribe_token
from tests.subscriptions.conftest import confirm_path, events, mails, subscribe, subscriber


@pytest.fixture
def pending(app: Flask, client: FlaskClient, session: Session) -> tuple[Subscriber, str]:
    """A pending reader and the path of its confirmation link."""
    subscribe(client, app, "mario@example.it", language="en")
    return subscriber(session, "mario@example.it"), confirm_path(mails(session)[0])


@pytest.fixture
def confirmed(client: FlaskClient, session: Session, pending: tuple[Subscriber, str]) -> Subscriber:
    assert client.post(pending[1]).status_code == 200
    return subscriber(session, "mario@example.it")


def unsubscribe_path(app: Flask, reader: Subscriber) -> str:
    with app.app_context():
        return f"/unsubscribe/{unsubscribe_token(reader.id)}"


def test_confirm_get_changes_nothing(client: FlaskClient, session: Session, pending: tuple[Subscriber, str]) -> None:
    for _ in range(3):  # scanners fetch links, sometimes more than once
        page = client.get(pending[1])
        assert page.status_code == 200
        assert '<form method="post">' in page.get_data(as_text=True)
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.PENDING
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"


def test_confirm_post_confirms_once(client: FlaskClient, session: Session, pending: tuple[Subscriber, str]) -> None:
    first = client.post(pending[1])
    assert first.status_code == 200 and "You are subscribed" in first.get_data(as_text=True)
    reader = subscriber(session, "mario@example.it")
    assert reader.status is SubscriberStatus.CONFIRMED and reader.confirmed_at is not None
    assert reader.confirm_requested_at is None
    second = client.post(pending[1])
    assert second.status_code == 200 and "already subscribed" in second.get_data(as_text=True)
    assert [e.action for e in events(session, reader.email_hash)] == ["signup", "confirm"]


def test_confirm_needs_no_session_or_csrf(make_app, session: Session) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    client.post("/api/subscribe", json={"email": "mario@example.it", "consent": True})
    fresh = app.test_client()  # no cookies at all
    assert fresh.post(confirm_path(mails(session)[0])).status_code == 200
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.CONFIRMED


@pytest.mark.parametrize("token", ["nonsense", "WzEsImFiYyJd.AAAAAA.forged", "a" * 300])
def test_forged_confirm_token(client: FlaskClient, session: Session, pending: tuple[Subscriber, str],
                              token: str) -> None:
    for method in (client.get, client.post):
        answer = method(f"/confirm/{token}")
        assert answer.status_code == 400
        assert "not valid" in answer.get_data(as_text=True)
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.PENDING


def test_token_signed_with_another_key_or_salt(app: Flask, client: FlaskClient, session: Session,
                                               pending: tuple[Subscriber, str]) -> None:
    reader = pending[0]
    with app.app_context():
        other_key = confirm_token(reader.id, reader.confirm_nonce, secret_key="another-secret")
        wrong_purpose = unsubscribe_token(reader.id)
    assert client.post(f"/confirm/{other_key}").status_code == 400
    assert client.post(f"/confirm/{wrong_purpose}").status_code == 400
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.PENDING


def test_confirm_link_expires_after_seven_days(client: FlaskClient, session: Session,
                                               pending: tuple[Subscriber, str]) -> None:
    later = utcnow().timestamp() + 7 * 86400 + 60
    with mock.patch("itsdangerous.timed.time.time", return_value=later):
        answer = client.post(pending[1])
    assert answer.status_code == 400 and "expired" in answer.get_data(as_text=True)
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.PENDING


def test_replaying_confirm_after_unsubscribe_does_nothing(app: Flask, client: FlaskClient, session: Session,
                                                          pending: tuple[Subscriber, str],
                                                          confirmed: Subscriber) -> None:
    assert client.post(unsubscribe_path(app, confirmed)).status_code == 200
    replay = client.post(pending[1])
    assert replay.status_code == 404 and "no longer valid" in replay.get_data(as_text=True)
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.UNSUBSCRIBED


def test_purged_signup_link_stops_working(app: Flask, client: FlaskClient, session: Session,
                                          pending: tuple[Subscriber, str]) -> None:
    assert purge_unconfirmed(session, app.config, utcnow() + timedelta(days=8)) == 1
    session.commit()
    assert client.get(pending[1]).status_code == 404
    assert client.post(pending[1]).status_code == 404


def test_unsubscribe_get_changes_nothing(app: Flask, client: FlaskClient, session: Session,
                                         confirmed: Subscriber) -> None:
    page = client.get(unsubscribe_path(app, confirmed))
    assert page.status_code == 200 and '<form method="post">' in page.get_data(as_text=True)
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.CONFIRMED


def test_unsubscribe_post_is_idempotent(app: Flask, client: FlaskClient, session: Session,
                                        confirmed: Subscriber) -> None:
    path = unsubscribe_path(app, confirmed)
    first = client.post(path)
    assert first.status_code == 200 and "You are unsubscribed" in first.get_data(as_text=True)
    second = client.post(path)
    assert second.status_code == 200 and "not subscribed" in second.get_data(as_text=True)
    reader = subscriber(session, "mario@example.it")
    assert reader.status is SubscriberStatus.UNSUBSCRIBED and reader.unsubscribed_at is not None
    assert [e.action for e in events(session, reader.email_hash)] == ["signup", "confirm", "unsubscribe"]
    assert events(session, reader.email_hash)[-1].channel == "link"


@pytest.mark.parametrize("multipart", [False, True])
def test_rfc8058_one_click(make_app, session: Session, multipart: bool) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    client.post("/api/subscribe", json={"email": "mario@example.it", "consent": True})
    client.post(confirm_path(mails(session)[0]))
    reader = subscriber(session, "mario@example.it")
    mail_provider = app.test_client()  # no cookies, no CSRF token, no Referer
    body = {"List-Unsubscribe": "One-Click"}
    answer = mail_provider.post(unsubscribe_path(app, reader), data=body,
                                content_type="multipart/form-data" if multipart else None)
    assert answer.status_code == 200 and "Location" not in answer.headers
    reader = subscriber(session, "mario@example.it")
    assert reader.status is SubscriberStatus.UNSUBSCRIBED
    assert events(session, reader.email_hash)[-1].channel == "one-click"


@pytest.mark.parametrize("purpose", ["unsubscribe", "preferences"])
def test_forged_subscriber_tokens(client: FlaskClient, session: Session, confirmed: Subscriber,
                                  purpose: str) -> None:
    for method in (client.get, client.post):
        answer = method(f"/{purpose}/{confirmed.id}.forged")
        assert answer.status_code == 400
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.CONFIRMED


def test_unsubscribe_token_of_a_deleted_reader(app: Flask, client: FlaskClient, session: Session) -> None:
    with app.app_context():
        path = f"/unsubscribe/{unsubscribe_token(4242)}"
    assert client.get(path).status_code == 404
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # nothing to do: done


def test_no_plain_address_in_links(app: Flask, session: Session, confirmed: Subscriber) -> None:
    with app.app_context():
        tokens = [unsubscribe_token(confirmed.id), preferences_token(confirmed.id)]
    tokens.append(confirm_path(mails(session)[0]))
    import base64

    for token in tokens:
        payload = token.split("/")[-1].split(".")[0]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        assert b"mario" not in decoded and b"example" not in decoded


def test_consent_log_of_a_confirmation(client: FlaskClient, session: Session, pending: tuple[Subscriber, str]) -> None:
    client.post(pending[1], headers={"User-Agent": "MailApp/2"}, environ_base={"REMOTE_ADDR": "198.51.100.4"})
    event: ConsentEvent = events(session, pending[0].email_hash)[-1]
    assert (event.action, event.channel, event.ip, event.user_agent) == ("confirm", "link", "198.51.100.4", "MailApp/2")
