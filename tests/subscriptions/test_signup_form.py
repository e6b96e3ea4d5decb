"""GET / and POST /subscribe: the page, consent, honeypot, timing, CSRF, same answer."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale, gettext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.models import ConsentChannel, ConsentEvent, OutboundMail, Subscriber, SubscriberStatus
from mailer.subscriptions import unsubscribe
from tests.subscriptions.conftest import confirm_path, mails, started, subscribe, subscriber


def test_signup_page_has_the_form(client: FlaskClient) -> None:
    page = client.get("/", headers={"Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Don&#39;t miss any news!" in html or "Don't miss any news!" in html
    assert re.search(r'<input[^>]*id="email"[^>]*type="email"', html)
    # The consent box is there, required, unticked, and links the privacy notice.
    box = re.search(r'<input[^>]*id="consent"[^>]*>', html)
    assert box and "checked" not in box.group(0) and "required" in box.group(0)
    assert '<a href="/privacy?lang=en"' in html
    assert 'aria-describedby=""' not in html  # an empty reference, when there is no error to point to
    # Topics from the configuration, a honeypot, the signed timestamp.
    assert 'value="ai"' in html and "Artificial intelligence" in html
    assert 'name="homepage"' in html and 'class="honeypot"' in html
    assert 'name="started"' in html
    assert page.headers["Cache-Control"] == "no-store"


def test_signup_page_language(client: FlaskClient) -> None:
    html = client.get("/?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert '<option selected value="en">English</option>' in html


def test_privacy_notice(client: FlaskClient) -> None:
    html = client.get("/privacy", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Notizie Tech S.r.l." in html and "Garante" in html and "7 days" in html


def test_signup_queues_a_confirmation_mail(app: Flask, client: FlaskClient, session: Session) -> None:
    answer = subscribe(client, app, "Mario@Example.it", topics=["ai", "web"])
    assert answer.status_code == 200
    assert "Check your inbox" in answer.get_data(as_text=True)
    reader = subscriber(session, "mario@example.it")
    assert reader.status is SubscriberStatus.PENDING
    assert reader.topics == "ai,web" and reader.language == "en"
    [mail] = mails(session)
    assert mail.to_address == "mario@example.it" and mail.kind == "confirm"  # sent or not yet: the outbox races
    assert confirm_path(mail).startswith("/confirm/")


def test_consent_is_required(app: Flask, client: FlaskClient, session: Session) -> None:
    answer = subscribe(client, app, "mario@example.it", consent=None)
    assert answer.status_code == 400
    assert "we need your consent" in answer.get_data(as_text=True)
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_bad_address_gets_400_with_the_reason(app: Flask, client: FlaskClient, session: Session) -> None:
    answer = subscribe(client, app, "mario@@example.it")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "more than one @" in html
    assert 'aria-invalid="true"' in html and 'role="alert"' in html
    assert 'value="mario@@example.it"' in html  # the reader's input is kept to fix it
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_header_injection_refused(app: Flask, client: FlaskClient, session: Session) -> None:
    answer = subscribe(client, app, "mario@example.it\r\nBcc: all@example.it")
    assert answer.status_code == 400
    assert "line break" in answer.get_data(as_text=True)
    assert mails(session) == []


def test_unknown_topic_refused(app: Flask, client: FlaskClient, session: Session) -> None:
    assert subscribe(client, app, "mario@example.it", topics=["ai", "gossip"]).status_code == 400
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_same_answer_for_every_state(app: Flask, client: FlaskClient, session: Session) -> None:
    """New, pending, confirmed, unsubscribed: byte-identical status and body."""
    first = subscribe(client, app, "new@example.it")
    subscribe(client, app, "pending@example.it")
    subscribe(client, app, "confirmed@example.it")
    subscribe(client, app, "gone@example.it")
    for mail in mails(session, "confirmed@example.it"):
        client.post(confirm_path(mail))
    gone = subscriber(session, "gone@example.it")
    unsubscribe(session, gone, ConsentChannel.LINK)
    session.commit()
    bodies = {}
    for address in ("other@example.it", "pending@example.it", "confirmed@example.it", "gone@example.it"):
        answer = subscribe(client, app, address)
        bodies[address] = (answer.status_code, answer.get_data(as_text=True).replace(address, "ADDRESS"))
    assert len(set(bodies.values())) == 1, bodies
    assert first.status_code == 200
    assert subscriber(session, "confirmed@example.it").status is SubscriberStatus.CONFIRMED


def test_known_confirmed_address_keeps_its_settings(app: Flask, client: FlaskClient, session: Session) -> None:
    subscribe(client, app, "mario@example.it", topics=["ai"])
    client.post(confirm_path(mails(session)[0]))
    subscribe(client, app, "mario@example.it", topics=["web"], language="it")
    reader = subscriber(session, "mario@example.it")
    assert (reader.topics, reader.language) == ("ai", "en")
    assert len(mails(session)) == 1  # and no mail to a confirmed reader


def test_returning_unsubscribed_reader_gets_a_fresh_confirmation(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    subscribe(client, app, "mario@example.it")
    first_link = confirm_path(mails(session)[0])
    client.post(first_link)
    reader = subscriber(session, "mario@example.it")
    unsubscribe(session, reader, ConsentChannel.LINK)
    session.commit()
    # Eleven minutes later (past the per-address interval), the reader signs up again.
    reader.confirmations_sent = [
        (datetime.fromisoformat(m) - timedelta(minutes=11)).isoformat() for m in reader.confirmations_sent
    ]
    session.commit()
    subscribe(client, app, "mario@example.it")
    new_mails = mails(session)
    assert len(new_mails) == 2
    new_link = confirm_path(new_mails[1])
    assert new_link != first_link
    assert client.post(first_link).status_code == 404  # the old link is void
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.UNSUBSCRIBED
    assert client.post(new_link).status_code == 200
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.CONFIRMED


def test_honeypot_pretends_and_does_nothing(app: Flask, client: FlaskClient, session: Session) -> None:
    answer = subscribe(client, app, "bot@example.it", homepage="http://spam.example")
    assert answer.status_code == 200
    assert "Check your inbox" in answer.get_data(as_text=True)
    assert session.scalar(select(func.count(Subscriber.id))) == 0
    assert session.scalar(select(func.count(ConsentEvent.id))) == 0


def test_too_fast_is_refused(app: Flask, client: FlaskClient, session: Session) -> None:
    answer = subscribe(client, app, "quick@example.it", started=started(app, age=0.5))
    assert answer.status_code == 400
    assert "That was quick" in answer.get_data(as_text=True)
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_forged_or_missing_timestamp_is_refused(app: Flask, client: FlaskClient, session: Session) -> None:
    for value in ("", "bogus", started(app).replace(".", "x", 1)):
        answer = subscribe(client, app, "mario@example.it", started=value)
        assert answer.status_code == 400
        assert "expired" in answer.get_data(as_text=True)
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_csrf_is_checked(make_app, session: Session) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    refused = subscribe(client, app, "mario@example.it")
    assert refused.status_code == 400
    assert "This form has expired" in refused.get_data(as_text=True)
    assert session.scalar(select(func.count(Subscriber.id))) == 0
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    accepted = subscribe(client, app, "mario@example.it", csrf_token=token.group(1))
    assert accepted.status_code == 200
    assert session.scalar(select(func.count(Subscriber.id))) == 1


def test_check_inbox_page_is_in_the_chosen_language(app: Flask, client: FlaskClient, session: Session) -> None:
    answer = subscribe(client, app, "mario@example.it", language="it")
    assert '<html lang="it">' in answer.get_data(as_text=True)
    assert subscriber(session, "mario@example.it").language == "it"
    with app.test_request_context(), force_locale("it"):
        italian = gettext("Confirm your subscription to %(site)s", site="Notizie Tech")
    with app.test_request_context(), force_locale("en"):
        english = gettext("Confirm your subscription to %(site)s", site="Notizie Tech")
    assert session.scalar(select(OutboundMail.subject)) == italian
    subscribe(client, app, "anna@example.it", language="en")
    assert mails(session, "anna@example.it")[0].subject == english


def test_a_forged_topic_is_refused_in_the_pages_language(
        app: Flask, client: FlaskClient, session: Session) -> None:
    """WTForms' own "not a valid choice" has no Italian: ours is said in the page's language."""
    forged = subscribe(client, app, "mario@example.it", topics="gossip", language="it")
    assert forged.status_code == 400
    page = forged.get_data(as_text=True)
    assert "Scegli tra gli argomenti proposti." in page and "not a valid choice" not in page
    assert session.scalar(select(func.count(Subscriber.id))) == 0
