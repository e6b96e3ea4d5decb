"""The preferences page: topics, language, unsubscribe, download my data, delete me."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.models import ConsentChannel, ConsentEvent, OutboundMail, Subscriber, SubscriberStatus
from mailer.subscriptions import import_csv
from mailer.subscriptions.addresses import erased_hash
from mailer.tokens import preferences_token, unsubscribe_token
from tests.subscriptions.conftest import confirm_path, data_path, events, mails, subscribe, subscriber


@pytest.fixture
def reader(app: Flask, client: FlaskClient, session: Session) -> Subscriber:
    subscribe(client, app, "mario@example.it", language="en", topics=["ai"])
    client.post(confirm_path(mails(session)[0]), headers={"User-Agent": "MailApp/2"})
    return subscriber(session, "mario@example.it")


@pytest.fixture
def path(app: Flask, reader: Subscriber) -> str:
    with app.app_context():
        return f"/preferences/{preferences_token(reader.id)}"


def test_page_shows_the_choices_in_the_readers_language(client: FlaskClient, path: str) -> None:
    page = client.get(path, headers={"Accept-Language": "it"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<html lang="en">' in html  # the reader's language beats the browser's
    assert 'checked id="topics-0" name="topics" type="checkbox" value="ai"' in html
    assert "mario@example.it" in html
    assert page.headers["Cache-Control"] == "no-store"


def test_save_topics_and_language(client: FlaskClient, session: Session, path: str) -> None:
    answer = client.post(path, data={"action": "save", "topics": ["web", "mobile"], "language": "it"})
    assert answer.status_code == 200
    assert '<html lang="it">' in answer.get_data(as_text=True)  # the page follows the new language
    reader = subscriber(session, "mario@example.it")
    assert (reader.topics, reader.language) == ("mobile,web", "it")
    event = events(session, reader.email_hash)[-1]
    assert event.action == "preferences"
    assert event.details["before"] == {"topics": "ai", "language": "en"}
    # Saving the same again logs nothing new.
    client.post(path, data={"action": "save", "topics": ["web", "mobile"], "language": "it"})
    assert len(events(session, reader.email_hash)) == 3


def test_bad_choices_are_refused(client: FlaskClient, session: Session, path: str) -> None:
    assert client.post(path, data={"action": "save", "topics": ["gossip"], "language": "en"}).status_code == 400
    assert client.post(path, data={"action": "save", "language": "xx"}).status_code == 400
    assert client.post(path, data={"action": "explode"}).status_code == 400
    assert subscriber(session, "mario@example.it").topics == "ai"


def test_unsubscribe_and_resubscribe(client: FlaskClient, session: Session, path: str) -> None:
    assert client.post(path, data={"action": "unsubscribe"}).status_code == 200
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.UNSUBSCRIBED
    page = client.get(path).get_data(as_text=True)
    assert 'value="resubscribe"' in page
    assert client.post(path, data={"action": "resubscribe"}).status_code == 200
    reader = subscriber(session, "mario@example.it")
    assert reader.status is SubscriberStatus.CONFIRMED
    assert [e.action for e in events(session, reader.email_hash)][-2:] == ["unsubscribe", "confirm"]


def test_download_my_data(client: FlaskClient, session: Session, path: str) -> None:
    answer = client.post(data_path(client, session, path), data={"action": "download"})
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert "attachment" in answer.headers["Content-Disposition"]
    data = json.loads(answer.get_data(as_text=True))
    assert data["subscriber"]["email"] == "mario@example.it"
    assert data["subscriber"]["status"] == "confirmed"
    assert data["subscriber"]["topics"] == [{"slug": "ai", "name": "Artificial intelligence"}]
    log = data["consent_log"]
    assert [e["action"] for e in log] == ["signup", "confirm"]
    assert log[0]["ip"] == "127.0.0.1" and log[0]["channel"] == "form" and log[0]["consent_text_version"]
    assert log[0]["details"]["consent_text"].startswith("I want to receive")
    assert log[1]["user_agent"] == "MailApp/2"
    # The confirmation names the consent text it confirmed; every time is UTC with its Z.
    assert log[1]["consent_text_version"] == log[0]["consent_text_version"]
    assert data["subscriber"]["confirmation_mails_sent"] and all(
        moment.endswith("Z") for moment in data["subscriber"]["confirmation_mails_sent"])


def test_delete_me(app: Flask, client: FlaskClient, session: Session, reader: Subscriber, path: str) -> None:
    kept = erased_hash(reader.email_hash, app.config["SECRET_KEY"])
    mine = data_path(client, session, path)
    unconfirmed = client.post(mine, data={"action": "erase"})
    assert unconfirmed.status_code == 400
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.CONFIRMED
    answer = client.post(mine, data={"action": "erase", "confirm_erase": "yes"})
    assert answer.status_code == 200 and "deleted" in answer.get_data(as_text=True)
    session.expire_all()
    erased = session.scalar(select(Subscriber).where(Subscriber.email_hash == kept))
    assert erased is not None
    assert erased.email is None and erased.status is SubscriberStatus.ERASED and erased.topics == ""
    assert erased.confirmations_sent == [] and erased.confirmed_at is None
    # No trace of the address anywhere (the mail with the data link included).
    assert session.scalar(select(func.count(OutboundMail.id))) == 0
    log = events(session, kept)
    assert [e.action for e in log] == ["signup", "confirm", "erasure"]
    assert all(e.ip is None and e.user_agent is None and e.source_page is None and e.details == {} for e in log)
    # The page is gone; an import cannot bring the address back.
    assert client.get(path).status_code == 404
    import io

    with app.app_context():
        report = import_csv(session, io.StringIO("email\nMario@example.it\n"), confirmed=True)
    session.commit()
    assert (report.imported, report.suppressed) == (0, 1)
    assert session.scalar(select(func.count(Subscriber.id))) == 1


def test_erased_reader_may_consent_again(app: Flask, client: FlaskClient, session: Session,
                                         reader: Subscriber, path: str) -> None:
    old_id, plain = reader.id, reader.email_hash
    kept = erased_hash(plain, app.config["SECRET_KEY"])
    unsubscribe_path = f"/unsubscribe/{unsubscribe_token(old_id, app.config['SECRET_KEY'])}"
    mine = data_path(client, session, path)
    client.post(mine, data={"action": "erase", "confirm_erase": "yes"})
    subscribe(client, app, "mario@example.it")
    # The links mailed before the erasure stay dead, even now that the address is back.
    assert client.get(path).status_code == 404
    assert client.post(mine, data={"action": "download"}).status_code == 404
    assert client.get(unsubscribe_path).status_code == 404
    link = confirm_path(mails(session)[-1])
    assert client.post(link).status_code == 200
    again = subscriber(session, "mario@example.it")
    assert again.id != old_id and again.status is SubscriberStatus.CONFIRMED
    assert again.last_signup_at is not None and again.created_at == again.last_signup_at  # begins anew
    assert again.email_hash == plain  # a live reader again: the plain hash
    # The erased history stays under the keyed hash; the new one begins under the plain hash.
    assert [e.action for e in events(session, kept)] == ["signup", "confirm", "erasure"]
    assert [e.action for e in events(session, again.email_hash)] == ["signup", "confirm"]
    # "Download my data" shows the new consent only: the erased history is no longer the reader's.
    new_path = f"/preferences/{preferences_token(again.id, app.config['SECRET_KEY'])}"
    data = client.post(data_path(client, session, new_path), data={"action": "download"}).get_json()
    assert [e["action"] for e in data["consent_log"]] == ["signup", "confirm"]


def test_consent_events_are_never_rewritten_except_by_erasure(client: FlaskClient, session: Session,
                                                             path: str) -> None:
    before = [(e.id, e.action, e.ip) for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]
    client.post(path, data={"action": "save", "topics": ["web"], "language": "en"})
    client.post(path, data={"action": "unsubscribe"})
    after = [(e.id, e.action, e.ip) for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]
    assert after[:len(before)] == before and len(after) == len(before) + 2


def test_preferences_post_needs_no_csrf_token(make_app, session: Session) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    client.post("/api/subscribe", json={"email": "anna@example.it", "consent": True})
    client.post(confirm_path(mails(session)[0]))
    reader = subscriber(session, "anna@example.it")
    with app.app_context():
        path = f"/preferences/{preferences_token(reader.id)}"
    answer = app.test_client().post(path, data={"action": "save", "topics": ["web"], "language": "it"})
    assert answer.status_code == 200
    assert subscriber(session, "anna@example.it").topics == "web"


def test_two_erasures_at_once_are_one(app: Flask, session: Session, reader: Subscriber) -> None:
    """A double click, or the reader and the admin together: the second finds nothing left to erase."""
    from mailer.db import get_sessionmaker
    from mailer.subscriptions import erase

    first, second = get_sessionmaker(app)(), get_sessionmaker(app)()
    one, two = first.get(Subscriber, reader.id), second.get(Subscriber, reader.id)
    assert one is not None and two is not None
    with app.app_context():
        assert erase(first, one, ConsentChannel.LINK) is not None
        first.commit()
        assert erase(second, two, ConsentChannel.ADMIN) is None
    second.commit()
    first.close()
    second.close()
    assert session.scalar(select(func.count(Subscriber.id))) == 1
