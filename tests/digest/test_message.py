"""An edition filled in for one reader and serialised: the bytes that go on the wire.

``delivery/`` does the real filling in; this checks that what digest/ hands
over makes a valid message: both parts, both links with a working token,
RFC 2047 subject, every line within 998 octets, in 8bit and quoted-printable.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import tokens
from mailer.digest import PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN, compose_digest
from mailer.digest.lines import MAX_LINE_OCTETS
from mailer.models import Article, DigestEdition, Subscriber
from tests.digest.conftest import NOW


def personalise(edition: DigestEdition, reader: Subscriber, cte: str) -> bytes:
    """What delivery does per reader: replace the placeholders, serialise."""
    unsubscribe = tokens.unsubscribe_token(reader.id)
    preferences = tokens.preferences_token(reader.id)
    html = edition.html.replace(UNSUBSCRIBE_TOKEN, unsubscribe).replace(PREFERENCES_TOKEN, preferences)
    text = edition.text.replace(UNSUBSCRIBE_TOKEN, unsubscribe).replace(PREFERENCES_TOKEN, preferences)
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "Notizie Tech <newsletter@example.it>"
    message["To"] = reader.email
    message["Subject"] = edition.subject
    message.set_content(text, cte=cte)
    message.add_alternative(html, subtype="html", cte=cte)
    return message.as_bytes()


@pytest.mark.parametrize("cte", ["8bit", "quoted-printable"])
def test_the_serialised_message_is_valid_on_the_wire(
    app_context: Flask, session: Session, add_article: Callable[..., Article],
    add_reader: Callable[..., Subscriber], cte: str,
) -> None:
    add_article("Perché l'IA – «davvero» – cambierà tutto", summary_html="<p>" + "Testo lungo, " * 200 + "</p>")
    for n in range(20):
        add_article(f"Notizia {n}")
    reader = add_reader("lettore@example.org", language="it")
    digest = compose_digest(session, app_context.config, NOW)
    session.commit()
    assert digest is not None
    edition = session.scalars(select(DigestEdition)).one()

    raw = personalise(edition, reader, cte)

    assert max(len(line) for line in raw.split(b"\r\n")) <= MAX_LINE_OCTETS
    subject_line = next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject:"))
    assert subject_line.isascii() and b"=?utf-8?" in subject_line
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == "Le notizie della settimana – 25 novembre 2026"
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and html is not None
    base = app_context.config["BASE_URL"]
    for part in (plain.get_content(), html.get_content()):
        unsubscribe = part.split(f"{base}/unsubscribe/")[1].split('"')[0].split()[0]
        preferences = part.split(f"{base}/preferences/")[1].split('"')[0].split()[0]
        assert tokens.read_subscriber_token("unsubscribe", unsubscribe) == reader.id
        assert tokens.read_subscriber_token("preferences", preferences) == reader.id
        assert f"{base}/archive/{digest.id}" in part
        assert "Perché l'IA – «davvero» – cambierà tutto" in part.replace("&#39;", "'")
