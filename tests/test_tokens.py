"""Signed tokens: one salt per purpose, no address inside, forgeries refused."""

from __future__ import annotations

import base64
import logging
import threading

import httpx
import pytest
from flask import Flask
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer
from werkzeug.serving import make_server

from mailer import tokens
from tests.deploy.test_gunicorn import deployed_database, environment, gunicorn

__all__ = ["deployed_database"]  # a fixture, used by name


def test_tokens_round_trip(app: Flask) -> None:
    with app.app_context():
        assert tokens.read_subscriber_token("unsubscribe", tokens.unsubscribe_token(42)) == 42
        assert tokens.read_subscriber_token("preferences", tokens.preferences_token(42)) == 42
        assert tokens.read_confirm_token(tokens.confirm_token(42, "n0nce")) == (42, "n0nce")


def test_tokens_are_what_stock_itsdangerous_makes_and_reads(app: Flask) -> None:
    """Signing skips itsdangerous' zlib attempt, which never shortens payloads this small."""
    key = app.config["SECRET_KEY"]
    for subscriber_id in (1, 42, 2**40):
        stock = URLSafeSerializer(key, salt="mailer.unsubscribe").dumps(subscriber_id)
        assert tokens.unsubscribe_token(subscriber_id, key) == stock
    confirm = tokens.confirm_token(7, "7bc5e3de4dbef652a7926f32bf9f881f", key)
    assert URLSafeTimedSerializer(key, salt="mailer.confirm").loads(confirm) == [7, "7bc5e3de4dbef652a7926f32bf9f881f"]


def test_a_token_is_good_for_one_purpose_only(app: Flask) -> None:
    with app.app_context():
        with pytest.raises(tokens.BadToken):
            tokens.read_subscriber_token("unsubscribe", tokens.preferences_token(42))
        with pytest.raises(tokens.BadToken):
            tokens.read_subscriber_token("preferences", tokens.unsubscribe_token(42))


@pytest.mark.parametrize("forged", ["", "42", "NDI.forged", "x" * 5000, "42.AAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_forged_tokens_are_refused(app: Flask, forged: str) -> None:
    with app.app_context():
        with pytest.raises(tokens.BadToken):
            tokens.read_subscriber_token("unsubscribe", forged)
        with pytest.raises(tokens.BadToken):
            tokens.read_confirm_token(forged)


def test_a_token_signed_with_another_key_is_refused(app: Flask) -> None:
    other = tokens.unsubscribe_token(42, secret_key="another-key")
    with app.app_context(), pytest.raises(tokens.BadToken):
        tokens.read_subscriber_token("unsubscribe", other)


def test_confirm_tokens_expire(app: Flask) -> None:
    with app.app_context():
        token = tokens.confirm_token(7, "abc")
        with pytest.raises(tokens.BadToken):
            tokens.read_confirm_token(token, max_age=-1)


def test_tokens_carry_no_address(app: Flask) -> None:
    with app.app_context():
        token = tokens.unsubscribe_token(42)
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert decoded == b"42"


# --- tokens stay out of logs --------------------------------------------------

LINK_ROUTES = ("confirm", "unsubscribe", "preferences", "my-data")


def _link_paths(app: Flask, secret_key: str | None = None) -> dict[str, str]:
    """A real-looking token for each link route (the reader need not exist: the request line is logged anyway)."""
    with app.app_context():
        return {
            "confirm": tokens.confirm_token(42, "n" * 32, secret_key),
            "unsubscribe": tokens.unsubscribe_token(42, secret_key),
            "preferences": tokens.preferences_token(42, secret_key),
            "my-data": tokens.data_token(42, "n" * 32, "confirmed", secret_key),
        }


@pytest.mark.slow
def test_gunicorn_access_log_has_no_token(app: Flask, deployed_database: str, smtp_server, tmp_path) -> None:
    env = environment(deployed_database, smtp_server.url, tmp_path)
    made = _link_paths(app, env["MAILER_SECRET_KEY"])
    with gunicorn(env, workers=1) as (base, log):
        for route, token in made.items():
            referer = f"https://mail.example/{route}/{token}"
            assert httpx.get(f"{base}/{route}/{token}", headers={"Referer": referer}, timeout=30).status_code < 500
            httpx.post(f"{base}/{route}/{token}", data={"List-Unsubscribe": "One-Click"}, timeout=30)
    output = log[0]
    for route, token in made.items():
        assert token not in output, output
        assert f'"GET /{route}/[token] HTTP/1.1"' in output, output  # still logged, without the key
        assert f"https://mail.example/{route}/[token]" in output


def test_development_server_log_has_no_token(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """The werkzeug server that `make run` (flask devserver) starts logs every request: not its token."""
    made = _link_paths(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            for route, token in made.items():
                assert httpx.get(f"http://127.0.0.1:{server.port}/{route}/{token}", timeout=30).status_code < 500
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
    logged = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    for route, token in made.items():
        assert not [line for line in logged if token in line], logged
        assert [line for line in logged if f"GET /{route}/[token] HTTP/1.1" in line], logged


def test_the_apps_own_log_lines_have_no_token(app: Flask) -> None:
    """What the app logs about a request (e.g. a database error on a path) leaves its handler redacted."""
    token = _link_paths(app)["unsubscribe"]
    handlers = [h for h in logging.getLogger("mailer").handlers if h.filters]
    assert handlers, "the app's log handler has no filter"
    record = logging.getLogger("mailer.errors").makeRecord(
        "mailer.errors", logging.ERROR, __file__, 1, "database error on %s %s", ("GET", f"/unsubscribe/{token}"), None)
    for handler in handlers:
        assert handler.filter(record)
        line = handler.format(record)
        assert "/unsubscribe/[token]" in line and token not in line
