"""Mail-bombing limits and per-IP rate limits."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from mailer.models import utcnow
from mailer.subscriptions.addresses import parse_address
from mailer.subscriptions.consent import FORM
from mailer.subscriptions.signup import Outcome, SignupRequest, signup
from tests.subscriptions.conftest import events, mails, subscribe, subscriber


def request_for(app: Flask, email: str) -> SignupRequest:
    with app.test_request_context():
        address = parse_address(email)
    return SignupRequest(address=address, topics="", language="en", channel=FORM, consent_text="I agree")


def test_one_mail_per_ten_minutes_and_three_a_day(app: Flask, session: Session) -> None:
    req, start = request_for(app, "victim@example.it"), utcnow()
    outcomes = []
    with app.test_request_context():
        for minutes in (0, 1, 5, 9, 11, 15, 25, 40, 300, 1000, 1439, 1441):
            outcomes.append((minutes, signup(session, app.config, req, now=start + timedelta(minutes=minutes))))
            session.commit()
    mailed = [minutes for minutes, outcome in outcomes if outcome is Outcome.MAILED]
    # 0, then 11 (10 minutes later), then 25; the 4th must wait until a day after the 1st.
    assert mailed == [0, 11, 25, 1441]
    assert len(mails(session)) == 4
    assert {o for _m, o in outcomes if _m not in mailed} == {Outcome.THROTTLED}


def test_many_requests_for_one_address_send_one_mail(app: Flask, client: FlaskClient, session: Session) -> None:
    for _ in range(20):
        assert subscribe(client, app, "victim@example.it").status_code == 200
    assert len(mails(session)) == 1
    reader = subscriber(session, "victim@example.it")
    # Every request is still logged, with what happened to it.
    outcomes = [e.details["outcome"] for e in events(session, reader.email_hash)]
    assert outcomes == ["mailed"] + ["throttled"] * 19


def test_throttled_request_keeps_the_mailed_link_working(app: Flask, client: FlaskClient, session: Session) -> None:
    subscribe(client, app, "mario@example.it")
    nonce = subscriber(session, "mario@example.it").confirm_nonce
    subscribe(client, app, "mario@example.it")
    assert subscriber(session, "mario@example.it").confirm_nonce == nonce


def test_global_hourly_cap(make_app, session: Session) -> None:  # type: ignore[no-untyped-def]
    app = make_app(CONFIRM_MAILS_PER_HOUR=3)
    client = app.test_client()
    for n in range(5):
        assert subscribe(client, app, f"reader{n}@example.it").status_code == 200
    assert len(mails(session)) == 3
    capped = subscriber(session, "reader4@example.it")
    assert events(session, capped.email_hash)[-1].details["outcome"] == "capped"


def test_stale_read_cannot_send_twice(app: Flask, session: Session) -> None:
    """Two requests that both read the row before either wrote: only one mails."""
    from mailer.db import get_sessionmaker
    from mailer.subscriptions.mails import confirmation_template
    from mailer.subscriptions.signup import LOOKUP, _known_signup

    req = request_for(app, "race@example.it")
    with app.test_request_context():
        signup(session, app.config, req, now=utcnow() - timedelta(hours=1))
        session.commit()
        other = get_sessionmaker(app)()
        first = session.connection().execute(LOOKUP, {"email_hash": req.address.hash}).one()
        second = other.connection().execute(LOOKUP, {"email_hash": req.address.hash}).one()
        mail = confirmation_template(app.config, req.language).for_address(req.address.email)
        outcomes = [_known_signup(session.connection(), app.config, req, utcnow(), False, first, mail)]
        session.commit()
        outcomes.append(_known_signup(other.connection(), app.config, req, utcnow(), False, second, mail))
        other.commit()
        other.close()
    assert outcomes == [Outcome.MAILED, Outcome.THROTTLED]
    assert len(mails(session)) == 2  # the first hour's mail and one more


def test_rate_limit_per_ip_on_both_routes(make_app, session: Session) -> None:  # type: ignore[no-untyped-def]
    app = make_app(RATELIMIT_ENABLED=True, SIGNUP_LIMIT="3/minute")
    client = app.test_client()
    assert subscribe(client, app, "a@example.it").status_code == 200
    assert client.post("/api/subscribe", json={"email": "b@example.it", "consent": True}).status_code == 202
    assert subscribe(client, app, "c@example.it").status_code == 200
    page = subscribe(client, app, "d@example.it")
    assert page.status_code == 429
    assert int(page.headers["Retry-After"]) > 0
    assert "Too many" in page.get_data(as_text=True)
    api = client.post("/api/subscribe", json={"email": "e@example.it", "consent": True},
                      headers={"Accept-Language": "en"})
    assert api.status_code == 429 and int(api.headers["Retry-After"]) > 0
    assert api.get_json()["error"] == "rate_limited"
    # Another IP is not affected; the refused requests changed nothing.
    other = client.post("/api/subscribe", json={"email": "f@example.it", "consent": True},
                        environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 202
    assert {m.to_address for m in mails(session)} == {"a@example.it", "b@example.it", "c@example.it", "f@example.it"}
    # The signup page itself and the CORS preflight are not limited.
    assert client.get("/").status_code == 200
    assert client.options("/api/subscribe").status_code == 204
