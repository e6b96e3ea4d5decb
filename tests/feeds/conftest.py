"""Helpers for the feed tests: the corpus, feeds in the database, a poll."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from mailer.db import get_sessionmaker
from mailer.feeds import FetchResult, fetch_all_feeds
from mailer.models import Article, Feed

CORPUS = Path(__file__).parent / "corpus"


def corpus(name: str) -> bytes:
    """A document of the corpus, as bytes (some are not UTF-8)."""
    return (CORPUS / name).read_bytes()


@pytest.fixture
def add_feed_row(app: Flask) -> Callable[..., int]:
    """Insert a Feed row; return its id."""

    def add(url: str, **fields: Any) -> int:
        with get_sessionmaker(app)() as session, session.begin():
            feed = Feed(url=url, source=fields.pop("source", "config"), **fields)
            session.add(feed)
            session.flush()
            return feed.id

    return add


@pytest.fixture
def poll(app: Flask) -> Callable[..., list[FetchResult]]:
    """Run ``fetch_all_feeds`` with the app's config plus ``overrides``.

    The corpus has fixed dates, so the first-fetch window is opened wide
    unless a test sets ``FIRST_FETCH_DAYS`` (the tests of that rule do).
    """

    def run(**overrides: Any) -> list[FetchResult]:
        config = {**app.config, "FIRST_FETCH_DAYS": 36500, **overrides}
        return fetch_all_feeds(get_sessionmaker(app), config)

    return run


@pytest.fixture
def articles(app: Flask) -> Callable[[], list[Article]]:
    """The stored articles, read afresh, oldest id first."""

    def read() -> list[Article]:
        with get_sessionmaker(app)() as session:
            return list(session.scalars(select(Article).order_by(Article.id)))

    return read


@pytest.fixture
def feed_row(app: Flask) -> Callable[[int], Feed]:
    """A Feed row read afresh."""

    def read(feed_id: int) -> Feed:
        with get_sessionmaker(app)() as session:
            feed = session.get(Feed, feed_id)
            assert feed is not None
            return feed

    return read
