"""Signed tokens: one salt per purpose, no address inside, forgeries refused."""

from __future__ import annotations

import base64

import pytest
from flask import Flask
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from mailer import tokens


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
