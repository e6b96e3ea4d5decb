"""POST /api/subscribe: the JSON contract, CORS for the configured origins only."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.models import ConsentEvent, Subscriber, SubscriberStatus
from mailer.subscriptions.consent import text_version
from tests.subscriptions.conftest import confirm_path, events, mails, subscriber

SITE = "https://www.example.it"


def post(client: FlaskClient, body: Any, **headers: str) -> Any:
    return client.post("/api/subscribe", json=body, headers={"Accept-Language": "en", **headers})


def test_accepted_with_the_same_body_for_any_address(client: FlaskClient, session: Session) -> None:
    first = post(client, {"email": "mario@example.it", "consent": True, "topics": ["ai"]})
    assert first.status_code == 202
    client.post(confirm_path(mails(session)[0]))
    again = post(client, {"email": "mario@example.it", "consent": True})
    other = post(client, {"email": "anna@example.it", "consent": True})
    assert first.get_json() == again.get_json() == other.get_json()
    assert first.get_json()["status"] == "accepted"
    assert subscriber(session, "mario@example.it").status is SubscriberStatus.CONFIRMED
    assert subscriber(session, "anna@example.it").status is SubscriberStatus.PENDING


@pytest.mark.parametrize(("body", "code"), [
    ({"email": "mario@example.it"}, "consent_required"),
    ({"email": "mario@example.it", "consent": "yes"}, "consent_required"),
    ({"email": "mario@example.it", "consent": 1}, "consent_required"),
    ({"email": "mario@@example.it", "consent": True}, "invalid_email"),
    ({"email": "mario@example.it\nBcc: x@example.it", "consent": True}, "invalid_email"),
    ({"email": "", "consent": True}, "missing_email"),
    ({"email": ["mario@example.it"], "consent": True}, "missing_email"),
    ({"consent": True}, "missing_email"),
    ({"email": "mario@example.it", "consent": True, "topics": ["gossip"]}, "unknown_topic"),
    ({"email": "mario@example.it", "consent": True, "topics": "ai"}, "bad_topics"),
    ({"email": "mario@example.it", "consent": True, "topics": {}}, "bad_topics"),
    ({"email": "mario@example.it", "consent": True, "topics": 0}, "bad_topics"),
    ({"email": "mario@example.it", "consent": True, "topics": False}, "bad_topics"),
    ({"email": "mario@example.it", "consent": True, "language": "fr"}, "bad_language"),
    (["mario@example.it"], "bad_body"),
    ("mario@example.it", "bad_body"),
])
def test_bad_requests_get_a_json_error(client: FlaskClient, session: Session, body: Any, code: str) -> None:
    answer = post(client, body)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == code
    assert answer.get_json()["message"]
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_invalid_address_message_says_why(client: FlaskClient) -> None:
    answer = post(client, {"email": "mario@localhost", "consent": True})
    assert "needs a dot" in answer.get_json()["message"]


def test_body_must_be_json(client: FlaskClient, session: Session) -> None:
    # A cross-site HTML form can post this without a preflight: it is refused.
    answer = client.post("/api/subscribe", data={"email": "mario@example.it", "consent": "true"})
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_body"
    answer = client.post("/api/subscribe", data='{"email": "mario@example.it", "consent": true}',
                         content_type="text/plain")
    assert answer.status_code == 400
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_oversized_body_refused(client: FlaskClient, session: Session) -> None:
    answer = post(client, {"email": "mario@example.it", "consent": True, "source": "x" * 20000})
    assert answer.status_code == 413 and answer.get_json()["error"] == "bad_body"
    # Chunked, with no Content-Length to check up front: cut while reading.
    body = json.dumps({"email": "mario@example.it", "consent": True, "source": "x" * 1_000_000}).encode()
    chunked = client.post("/api/subscribe", input_stream=io.BytesIO(body), content_type="application/json",
                          headers={"Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input_terminated": True})  # as gunicorn says of a chunked body
    assert chunked.status_code == 413 and chunked.get_json()["error"] == "bad_body"
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_deeply_nested_json_is_a_bad_body_not_a_crash(client: FlaskClient) -> None:
    nested = '{"email": "mario@example.it", "consent": true, "x": ' + "[" * 5000 + "]" * 5000 + "}"
    answer = client.post("/api/subscribe", data=nested, content_type="application/json")
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_body"


def test_records_source_and_consent_text(client: FlaskClient, session: Session) -> None:
    shown = "Sì, voglio la newsletter e ho letto l'informativa."
    post(client, {"email": "mario@example.it", "consent": True, "language": "it",
                  "source": f"{SITE}/2026/articolo", "consent_text": shown},
         **{"User-Agent": "TestBrowser/1.0"})
    reader = subscriber(session, "mario@example.it")
    [event] = events(session, reader.email_hash)
    assert (event.action, event.channel, event.language) == ("signup", "api", "it")
    assert event.source_page == f"{SITE}/2026/articolo"
    assert event.consent_text_version == text_version(shown, "it")
    assert event.user_agent == "TestBrowser/1.0" and event.ip == "127.0.0.1"
    assert reader.language == "it"


def test_cors_only_for_configured_origins(make_app) -> None:
    app: Flask = make_app(CORS_ORIGINS=[SITE])
    client = app.test_client()
    preflight = client.options("/api/subscribe", headers={
        "Origin": SITE, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == SITE
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    allowed = post(client, {"email": "mario@example.it", "consent": True}, Origin=SITE)
    assert allowed.status_code == 202 and allowed.headers["Access-Control-Allow-Origin"] == SITE
    assert "Origin" in allowed.headers["Vary"]
    error = post(client, {"email": "x", "consent": True}, Origin=SITE)
    assert error.status_code == 400 and error.headers["Access-Control-Allow-Origin"] == SITE

    evil = "https://evil.example.com"
    preflight = client.options("/api/subscribe", headers={"Origin": evil, "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    refused = post(client, {"email": "anna@example.it", "consent": True}, Origin=evil)
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers


def test_no_cors_by_default(client: FlaskClient, session: Session) -> None:
    answer = post(client, {"email": "mario@example.it", "consent": True}, Origin=SITE)
    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer.headers
    # Our own pages, and callers that are not browsers, are fine.
    assert post(client, {"email": "mario@example.it", "consent": True},
                Origin="http://newsletter.test").status_code == 202
    assert post(client, {"email": "anna@example.it", "consent": True}).status_code == 202
    assert session.scalar(select(func.count(ConsentEvent.id))) == 2


def test_api_needs_no_csrf_token(make_app) -> None:
    app: Flask = make_app(WTF_CSRF_ENABLED=True)
    assert post(app.test_client(), {"email": "mario@example.it", "consent": True}).status_code == 202
