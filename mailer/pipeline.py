"""The jobs that call several stages in order: ``poll_feeds``, ``send_digest``, ``process_bounce_mail``.

The command line, the scheduler, the dashboard and the development mail
viewer import them from here, so each does exactly the same thing; the
scheduler's own machinery (triggers, locks, signals) stays in
``scheduler.py`` and ``runner.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from mailer.db import get_sessionmaker, session_scope
from mailer.delivery import DeliveryReport, SenderBusyError, deliver
from mailer.delivery.bounces import Source, mark_read, record_report
from mailer.delivery.stamp import Stamper
from mailer.digest import compose_digest, skip_reason
from mailer.feeds import FetchResult, fetch_all_feeds, sync_configured_feeds
from mailer.locks import advisory_key
from mailer.models import Digest, DigestStatus, utcnow
from mailer.subscriptions import suppress_bounced, suppress_complained

log = logging.getLogger("mailer.pipeline")
# Seconds a sender waits for another one's composing before it gives up (exit 75).
COMPOSE_WAIT = 300


def poll_feeds(app: Flask, stop: threading.Event | None = None) -> list[FetchResult]:
    """Poll every enabled feed (those of ``MAILER_FEEDS`` are added first).

    ``stop`` abandons the downloads in progress (a feed may hang for
    ``FEED_TIMEOUT``): the scheduler's shutdown does not wait for them.
    """
    with app.app_context():
        with session_scope(app) as session:
            sync_configured_feeds(session, app.config["FEEDS"])
        return fetch_all_feeds(get_sessionmaker(app), app.config, stop=stop)


def send_digest(app: Flask, *, poll: bool, echo: Callable[[str], None] = print,
                stop: threading.Event | None = None) -> DeliveryReport:
    """Finish unfinished digests, compose a new one if there is news, send it.

    ``poll`` first polls the feeds (the scheduler's digest job does; the
    ``digest send`` command does not). ``stop`` (SIGTERM in the scheduler)
    ends the send after the messages in flight, leaving the rest queued.
    Raises ``DeliveryError`` when the SMTP server cannot be used at all.
    """
    with app.app_context():
        if poll:
            for result in poll_feeds(app, stop):
                echo(result.line())
        # Unfinished digests first: a crash or a deferral must not wait a week.
        report = deliver(app, echo=echo, stop=stop)
        suppress_bounced_readers(app, echo)
        if stop is not None and stop.is_set():
            return report
        joining: list[int] = []
        with session_scope(app) as session:
            wait_for_composer(session, echo)
            now = utcnow()
            digest = compose_digest(session, app.config, now)
            if digest is None:
                echo(f"no new digest: {skip_reason(session, app.config, now) or 'another process composed it'}")
                # Composed by a sender started with us: join it and carry a share.
                sending = session.scalars(select(Digest.id).where(Digest.status == DigestStatus.SENDING))
                joining = [digest_id for digest_id in sending if digest_id not in report.digests]
                for digest_id in joining:
                    echo(f"digest {digest_id} is being sent by another process: joining it")
            else:
                echo(f"composed digest {digest.id} ({digest.period}) with {digest.article_count} articles")
        if digest is not None or joining:
            report = report.merge(deliver(app, echo=echo, stop=stop))
            suppress_bounced_readers(app, echo)
        return report


def wait_for_composer(session: Session, echo: Callable[[str], None]) -> None:
    """PostgreSQL: compose one at a time, waiting (bounded) for a composer's commit.

    The lock is the transaction's: it goes with the composer's commit, after
    which this sender sees the digest composed and joins its send instead of
    rendering it a second time. SQLite serialises writers by itself.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = {"key": advisory_key("compose")}
    if session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), key):
        return
    echo(f"another process is composing the digest: waiting for it (at most {COMPOSE_WAIT} s)")
    session.execute(text(f"SET LOCAL lock_timeout = '{COMPOSE_WAIT}s'"))
    try:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
    except OperationalError:
        raise SenderBusyError(f"another process has been composing the digest for {COMPOSE_WAIT} s: "
                              "try again when it has finished") from None
    session.execute(text("SET LOCAL lock_timeout = 0"))


def process_bounce_mail(app: Flask, sources: Iterable[Source], echo: Callable[[str], None] = print) -> int:
    """Record the bounce and complaint reports that came back by mail, then suppress their readers.

    Each mail is committed before it is marked read (a Maildir's new/ to
    cur/), so a crash in between reads it again, which changes nothing.
    Returns how many readers were suppressed.
    """
    stamper = Stamper(app.config["SECRET_KEY"])
    with app.app_context():
        for source in sources:
            with session_scope(app) as session:
                lines = record_report(session, source.raw, stamper, source.name)
            mark_read(source)
            for line in lines:
                echo(f"{source.name}: {line}")
        with session_scope(app) as session:
            bounced = suppress_bounced(session)
            complained = suppress_complained(session)
    echo(f"{bounced} readers suppressed after a hard bounce, {complained} after a complaint")
    return bounced + complained


def suppress_bounced_readers(app: Flask, echo: Callable[[str], None]) -> None:
    """Readers whose address hard-bounced get no further digest."""
    with session_scope(app) as session:
        count = suppress_bounced(session)
    if count:
        echo(f"{count} readers suppressed after a hard bounce")
