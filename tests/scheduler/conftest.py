"""Rows and feeds for the scheduler tests: readers, a live feed, a job table."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from flask import Flask
from sqlalchemy import insert
from sqlalchemy.orm import Session

from mailer.models import Subscriber, SubscriberStatus, utcnow
from mailer.runner import Job
from mailer.scheduler import JOBS


def job(name: str) -> Job:
    """The scheduler's job called ``name``."""
    return {j.name: j for j in JOBS}[name]


def add_readers(session: Session, emails: Sequence[str]) -> None:
    """Confirmed readers of every topic, committed."""
    now = utcnow()
    session.execute(insert(Subscriber), [
        {"email": email, "email_hash": hashlib.sha256(email.encode()).hexdigest(),
         "status": SubscriberStatus.CONFIRMED, "language": "it", "topics": "",
         "confirm_nonce": uuid.uuid4().hex, "confirmations_sent": [], "confirmed_at": now}
        for email in emails
    ])
    session.commit()


def rss(count: int, prefix: str = "Notizia") -> bytes:
    """An RSS feed of ``count`` items published in the last hours."""
    now = datetime.now(UTC)
    items = "".join(
        f"<item><title>{prefix} {i}</title><link>https://news.example.it/{prefix.lower()}/{i}</link>"
        f"<guid>https://news.example.it/{prefix.lower()}/{i}</guid><category>Web</category>"
        f"<description>Il sommario della notizia {i}.</description>"
        f"<pubDate>{format_datetime(now - timedelta(minutes=10 * i))}</pubDate></item>"
        for i in range(1, count + 1)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Notizie di prova</title>'
        f"<link>https://news.example.it/</link><description>Prova</description>{items}</channel></rss>"
    ).encode()


@pytest.fixture
def app(app: Flask) -> Flask:
    """The shared app: few connections, no retry inside a run (the jobs retry)."""
    app.config.update(SMTP_CONNECTIONS=2, DELIVERY_RETRY_WITHIN_RUN_SECONDS=0, SMTP_TIMEOUT=10)
    return app
