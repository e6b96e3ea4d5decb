"""Signed tokens for the links in mails: one salt per purpose, one power each.

Shared by ``subscriptions/`` (which checks them) and ``delivery/`` (which
fills them into each reader's copy), so it lives outside both. A token carries
a subscriber id, never an address.

- ``unsubscribe`` (List-Unsubscribe, every digest): unsubscribe, nothing
  else. Never expires: RFC 8058 expects one-click links to work for as long
  as the mail is in someone's box.
- ``preferences`` (every digest's footer): topics, language, unsubscribe,
  resubscribe, and asking for a ``data`` link by mail. Never expires either:
  a forwarded digest already carries it, and it can read or erase nothing.
- ``data`` (mailed on request, to the address only): see the consent
  record, download the data, erase. Lives ``DATA_LINK_MINUTES`` and is bound
  to the reader's nonce and status, so it dies at the first change of state.
- ``confirm``: one pending signup, ``CONFIRM_MAX_AGE``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

from flask import current_app
from itsdangerous import BadData, Serializer, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode

CONFIRM_MAX_AGE = 7 * 24 * 3600


class BadToken(Exception):
    """The token is forged, damaged, expired or for another purpose."""


def _serializer(purpose: str, secret_key: str | None = None) -> URLSafeSerializer:
    return _plain(purpose, secret_key or current_app.config["SECRET_KEY"])


def _timed(purpose: str, secret_key: str | None = None) -> URLSafeTimedSerializer:
    return _timed_for(purpose, secret_key or current_app.config["SECRET_KEY"])


class _Uncompressed:
    """The URL-safe payload without the zlib attempt that itsdangerous makes at every ``dumps``.

    Our payloads (an id, an id and a nonce) are a few dozen bytes, which zlib
    never shortens, so the tokens are the very same bytes, and the stock
    ``loads`` reads them; signing costs a sixth (bench/FIGURES.md), and a digest
    signs two tokens per reader, each signup batch one per mail.
    """

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(cast(Serializer, self), obj))


class _Plain(_Uncompressed, URLSafeSerializer):
    pass


class _Timed(_Uncompressed, URLSafeTimedSerializer):
    pass


# One serializer per (purpose, key), built once: building one costs more than
# signing with it (it test-dumps a value).
@lru_cache(maxsize=32)
def _plain(purpose: str, secret_key: str) -> URLSafeSerializer:
    return _Plain(secret_key, salt=f"mailer.{purpose}")


@lru_cache(maxsize=32)
def _timed_for(purpose: str, secret_key: str) -> URLSafeTimedSerializer:
    return _Timed(secret_key, salt=f"mailer.{purpose}")


def unsubscribe_token(subscriber_id: int, secret_key: str | None = None) -> str:
    """A token for the unsubscribe link; it does not expire (RFC 8058)."""
    return str(_serializer("unsubscribe", secret_key).dumps(subscriber_id))


def preferences_token(subscriber_id: int, secret_key: str | None = None) -> str:
    """A token for the preferences page; it does not expire."""
    return str(_serializer("preferences", secret_key).dumps(subscriber_id))


def confirm_token(subscriber_id: int, nonce: str, secret_key: str | None = None) -> str:
    """A token for the confirmation link, bound to one pending signup (``nonce``)."""
    return str(_timed("confirm", secret_key).dumps([subscriber_id, nonce]))


def data_token(subscriber_id: int, nonce: str, status: str, secret_key: str | None = None) -> str:
    """A short-lived token for "my data": bound to the reader's nonce and status of the moment."""
    return str(_timed("data", secret_key).dumps([subscriber_id, nonce, status]))


def read_data_token(token: str, max_age: int) -> tuple[int, str, str]:
    """The (subscriber id, nonce, status) of a data token at most ``max_age`` seconds old; raise BadToken."""
    try:
        value: Any = _timed("data").loads(token, max_age=max_age)
    except BadData as exc:
        raise BadToken(str(exc)) from None
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], int)
            and all(isinstance(part, str) for part in value[1:])):
        raise BadToken("unexpected payload")
    return value[0], value[1], value[2]


def read_subscriber_token(purpose: str, token: str) -> int:
    """The subscriber id in an unsubscribe or preferences token; raise BadToken."""
    try:
        value: Any = _serializer(purpose).loads(token)
    except BadData as exc:
        raise BadToken(str(exc)) from None
    if not isinstance(value, int):
        raise BadToken("unexpected payload")
    return value


def read_confirm_token(token: str, max_age: int = CONFIRM_MAX_AGE) -> tuple[int, str]:
    """The (subscriber id, nonce) of a confirmation token; raise BadToken."""
    try:
        value: Any = _timed("confirm").loads(token, max_age=max_age)
    except BadData as exc:
        raise BadToken(str(exc)) from None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], str)):
        raise BadToken("unexpected payload")
    return value[0], value[1]
