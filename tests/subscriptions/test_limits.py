"""Mail-bombing limits and per-IP rate limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.db import get_engine
from mailer.models import ConsentChannel, ConsentEvent, Subscriber, utcnow
from mailer.subscriptions import signup
from mailer.subscriptions.addresses import parse_address
from mailer.subscriptions.signup import Outcome, SignupRequest, apply_queue, claim_batch, enqueue
from mailer.tokens import read_confirm_token
from tests.subscriptions.conftest import confirm_path, events, mails, signup_at, subscribe, subscriber


def request_for(app: Flask, email: str) -> SignupRequest:
    with app.test_request_context():
        address = parse_address(email)
    return SignupRequest(address=address, topics="", language="en", channel=ConsentChannel.FORM, consent_text="I agree")


MINUTES = (0, 1, 5, 9, 11, 15, 25, 40, 300, 1000, 1439, 1441)


def test_one_mail_per_ten_minutes_and_three_a_day(app: Flask, session: Session) -> None:
    req, start = request_for(app, "victim@example.it"), utcnow() - timedelta(days=2)
    outcomes = [(minutes, signup_at(app, req, start + timedelta(minutes=minutes))) for minutes in MINUTES]
    mailed = [minutes for minutes, outcome in outcomes if outcome == Outcome.MAILED]
    # 0, then 11 (10 minutes later), then 25; the 4th must wait until a day after the 1st.
    assert mailed == [0, 11, 25, 1441]
    assert len(mails(session)) == 4
    assert {o for _m, o in outcomes if _m not in mailed} == {Outcome.THROTTLED}


def test_the_limits_hold_within_one_batch(app: Flask, session: Session) -> None:
    """A flood queued faster than it is applied: the same rules, request by request, in memory."""
    req, start = request_for(app, "victim@example.it"), utcnow() - timedelta(days=2)
    for minutes in MINUTES:
        enqueue(get_engine(app), req, start + timedelta(minutes=minutes))
    with app.app_context():
        assert apply_queue(app) == len(MINUTES)
    outcomes = [e.details["outcome"] for e in events(session, req.address.hash)]
    assert [m for m, outcome in zip(MINUTES, outcomes, strict=True) if outcome == "mailed"] == [0, 11, 25, 1441]
    assert len(mails(session)) == 4
    # The last mail's link is the one that works: its nonce is the subscriber's.
    reader = subscriber(session, "victim@example.it")
    with app.app_context():
        token = confirm_path(mails(session)[-1]).removeprefix("/confirm/")
        assert read_confirm_token(token) == (reader.id, reader.confirm_nonce)


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


def test_global_hourly_cap(make_app, session: Session) -> None:
    """Past the cap a mail is not lost: it waits in the outbox for the hour that has room, oldest first."""
    app = make_app(CONFIRM_MAILS_PER_HOUR=3)
    client = app.test_client()
    for n in range(5):
        assert subscribe(client, app, f"reader{n}@example.it").status_code == 200
    queued = mails(session)
    assert [m.to_address for m in queued] == [f"reader{n}@example.it" for n in range(5)]
    assert [m.not_before > m.created_at for m in queued] == [False, False, False, True, True]
    # At most three in any hour: the 4th leaves an hour after the 1st, the 5th an hour after the 2nd.
    assert [m.not_before for m in queued[3:]] == [m.not_before + timedelta(hours=1) for m in queued[:2]]
    assert [(m.next_attempt_at, m.attempts, m.sent_at) for m in queued[3:]] == [
        (m.not_before, 0, None) for m in queued[3:]]  # the outbox leaves them until then
    held = subscriber(session, "reader4@example.it")
    assert events(session, held.email_hash)[-1].details["outcome"] == "held"


def test_the_hourly_cap_holds_within_one_batch(make_app, session: Session) -> None:
    app = make_app(CONFIRM_MAILS_PER_HOUR=3)
    for n in range(5):
        enqueue(get_engine(app), request_for(app, f"reader{n}@example.it"))
    with app.app_context():
        assert apply_queue(app) == 5
    assert len(mails(session)) == 5
    assert [e.details["outcome"] for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))] == [
        "mailed", "mailed", "mailed", "held", "held"]


def _interleaved(app: Flask, monkeypatch: pytest.MonkeyPatch, first: list[str], second: list[str]) -> list[str]:
    """Two workers apply a batch each (``first``, ``second``); the second writes between the first's read and write.

    Returns the outcomes in the consent log: the second batch's, then the first's.
    """
    engine = get_engine(app)
    batches = []
    for emails in (first, second):
        for email in emails:
            enqueue(engine, request_for(app, email))
        batches.append(claim_batch(engine))
    (token_a, rows_a), (token_b, rows_b) = batches
    real_read, applied = signup._read, list[object]()

    def read_then_the_other_worker(*args: Any) -> Any:
        known = real_read(*args)
        if not applied:
            applied.append(0)
            applied[0] = signup.apply_batch(app, engine, token_b, rows_b)
        return known

    monkeypatch.setattr(signup, "_read", read_then_the_other_worker)
    with app.app_context():
        assert signup.apply_batch(app, engine, token_a, rows_a) == len(first)
    assert applied == [len(second)]
    with engine.connect() as conn:
        return [details["outcome"] for details in conn.scalars(select(ConsentEvent.details).order_by(ConsentEvent.id))]


def test_stale_read_of_a_known_address_cannot_send_twice(app: Flask, session: Session,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Both workers read the pending reader (mailed an hour ago) before either wrote: one mails."""
    signup_at(app, request_for(app, "race@example.it"), utcnow() - timedelta(hours=1))
    assert _interleaved(app, monkeypatch, ["race@example.it"], ["race@example.it"]) == ["mailed", "mailed", "throttled"]
    assert len(mails(session)) == 2  # the first hour's mail and one more


def test_the_hourly_cap_holds_between_concurrent_batches(make_app, session: Session,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Both workers saw the whole budget; the second to write reads it again, inside its transaction."""
    app = make_app(CONFIRM_MAILS_PER_HOUR=4)
    outcomes = _interleaved(app, monkeypatch, ["a@example.it", "b@example.it", "c@example.it"],
                            ["d@example.it", "e@example.it", "f@example.it"])
    assert outcomes == ["mailed", "mailed", "mailed", "mailed", "held", "held"]
    queued = mails(session)
    assert len(queued) == 6
    held = [m for m in queued if m.not_before > m.created_at]
    assert [m.to_address for m in held] == ["b@example.it", "c@example.it"]
    first_hour = sorted(m.not_before for m in queued if m not in held)
    assert [m.not_before for m in held] == [moment + timedelta(hours=1) for moment in first_hour[:2]]


def test_stale_read_of_a_new_address_cannot_send_twice(app: Flask, session: Session,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Both workers saw no subscriber: the second insert fails, and the batch is applied again."""
    assert _interleaved(app, monkeypatch, ["new-race@example.it"], ["new-race@example.it"]) == ["mailed", "throttled"]
    assert len(mails(session)) == 1
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 1


def test_rate_limit_per_ip_on_both_routes(make_app, session: Session) -> None:
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
    # The refusal speaks the language the form or the body chose, whatever the browser says.
    italian_browser = {"Accept-Language": "it"}
    english = client.post("/api/subscribe", json={"email": "g@example.it", "consent": True, "language": "en"},
                          headers=italian_browser)
    assert english.status_code == 429 and "Too many" in english.get_json()["message"]
    form = subscribe(client, app, "h@example.it", language="en")  # its own Accept-Language is en
    assert "Too many" in form.get_data(as_text=True)
    italian = client.post("/api/subscribe", json={"email": "i@example.it", "consent": True, "language": "it"},
                          headers={"Accept-Language": "en"})
    assert italian.status_code == 429 and "Too many" not in italian.get_json()["message"]


def test_an_import_being_written_does_not_spend_the_signups_hourly_budget(make_app) -> None:
    """On PostgreSQL nothing serialises an import with signup batches: its uncommitted rows must not count."""
    from typing import cast

    from sqlalchemy import Table, insert

    from mailer.models import MailKind, OutboundMail, utcnow
    from mailer.subscriptions.budget import read_budget

    def hourly_budget(conn: Any, config: Any, now: Any) -> int:
        return int(config["CONFIRM_MAILS_PER_HOUR"]) - read_budget(conn, config, now, [], 1).count

    outbox = cast(Table, OutboundMail.__table__)

    def row(kind: str) -> dict[str, object]:
        now = utcnow()
        return {"kind": kind, "to_address": "a@example.it", "subject": "s", "html": "h", "text": "t",
                "created_at": now, "not_before": now, "attempts": 0}

    app = make_app(CONFIRM_MAILS_PER_HOUR=100)
    engine = get_engine(app)
    with engine.begin() as conn:
        conn.execute(insert(outbox), [row(MailKind.CONFIRM)])
    with engine.begin() as conn:  # an import, committed: another kind, not counted
        conn.execute(insert(outbox), [row(MailKind.IMPORT_CONFIRM) for _ in range(300)])
    if engine.dialect.name == "postgresql":
        importer = engine.connect()
        writing = importer.begin()
        importer.execute(insert(outbox), [row(MailKind.IMPORT_CONFIRM) for _ in range(300)])  # still uncommitted
        with engine.begin() as conn:
            conn.execute(insert(outbox), [row(MailKind.CONFIRM)])  # a signup batch commits meanwhile
        with app.app_context(), engine.connect() as conn:
            assert hourly_budget(conn, app.config, utcnow()) == 98
        writing.commit()
        importer.close()
    with app.app_context(), engine.connect() as conn:
        assert hourly_budget(conn, app.config, utcnow()) == (98 if engine.dialect.name == "postgresql" else 99)


def test_the_per_ip_limit_counts_an_ipv6_client_by_its_64(make_app, session: Session) -> None:
    """Every IPv6 host holds a /64: one address after another from it is still one client, as at the admin login."""
    app = make_app(RATELIMIT_ENABLED=True, SIGNUP_LIMIT="3/minute")
    client = app.test_client()

    def signup(n: int, address: str) -> int:
        response = client.post("/api/subscribe", json={"email": f"v6-{n}@example.it", "consent": True},
                               environ_base={"REMOTE_ADDR": address})
        return int(response.status_code)

    assert [signup(n, f"2001:db8:1:2::{n:x}") for n in range(1, 5)] == [202, 202, 202, 429]
    assert signup(5, "2001:db8:1:2:ffff:ffff:ffff:ffff") == 429
    assert signup(6, "2001:db8:1:3::1") == 202  # the next /64 is another client
    # An IPv4-mapped address is its IPv4 client.
    assert [signup(n, a) for n, a in ((7, "192.0.2.9"), (8, "::ffff:192.0.2.9"), (9, "192.0.2.9"))] == [202] * 3
    assert signup(10, "::ffff:192.0.2.9") == 429
