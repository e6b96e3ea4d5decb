"""Rows for the digest tests, inserted directly (feeds/ and subscriptions/ are separate stages)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from mailer.models import Article, Feed, Subscriber, SubscriberStatus

# A Wednesday: 25 November 2026, 09:00 in Rome (ISO week 2026-W48).
NOW = datetime(2026, 11, 25, 8, 0)

_numbers = itertools.count(1)


@pytest.fixture
def app_context(app: Flask) -> Iterator[Flask]:
    """Rendering needs the app (templates, Flask-Babel)."""
    with app.app_context():
        yield app


@pytest.fixture
def feed(session: Session) -> Feed:
    """An enabled feed."""
    row = Feed(url="https://news.example.it/feed.xml", title="Tech News Example")
    session.add(row)
    session.commit()
    return row


@pytest.fixture
def add_article(session: Session, feed: Feed) -> Callable[..., Article]:
    """Insert an article (committed); keyword arguments override the defaults."""

    def add(title: str | None = None, topic: str = "ai", **fields: Any) -> Article:
        number = next(_numbers)
        values: dict[str, Any] = {
            "feed_id": feed.id,
            "dedup_key": f"guid-{number}",
            "url": f"https://news.example.it/articoli/{number}",
            "title": title or f"Articolo numero {number}",
            "summary_html": f"<p>Il sommario dell'articolo {number}, con <b>grassetto</b>.</p>",
            "summary_text": f"Il sommario dell'articolo {number}, con grassetto.",
            "topic": topic,
            "published_at": NOW - timedelta(minutes=number),
        }
        values.update(fields)
        article = Article(**values)
        session.add(article)
        session.commit()
        return article

    return add


@pytest.fixture
def add_reader(session: Session) -> Callable[..., Subscriber]:
    """Insert a subscriber (confirmed unless told otherwise), committed."""

    def add(email: str | None = None, topics: str = "", language: str = "en",
            status: SubscriberStatus = SubscriberStatus.CONFIRMED) -> Subscriber:
        address = email or f"reader{next(_numbers)}@example.org"
        reader = Subscriber(
            email=address, email_hash=hashlib.sha256(address.encode()).hexdigest(), status=status,
            language=language, topics=topics, confirm_nonce="n" * 32, confirmed_at=NOW,
        )
        session.add(reader)
        session.commit()
        return reader

    return add
