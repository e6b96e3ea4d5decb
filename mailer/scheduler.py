"""Jobs that call several stages in order, and the scheduler that runs them.

``poll_feeds`` and ``send_digest`` are shared by the command line and the
scheduler, so both do exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from mailer.db import get_sessionmaker, session_scope
from mailer.delivery import DeliveryReport, deliver
from mailer.digest import compose_digest
from mailer.feeds import FetchResult, fetch_all_feeds, sync_configured_feeds
from mailer.models import utcnow


def poll_feeds(app: Flask) -> list[FetchResult]:
    """Poll every enabled feed (those of ``MAILER_FEEDS`` are added first)."""
    with app.app_context():
        with session_scope(app) as session:
            sync_configured_feeds(session, app.config["FEEDS"])
        return fetch_all_feeds(get_sessionmaker(app), app.config)


def send_digest(app: Flask, *, poll: bool, echo: Callable[[str], None] = print) -> DeliveryReport:
    """Finish unfinished digests, compose a new one if there is news, send it.

    ``poll`` first polls the feeds (the scheduler's digest job does; the
    ``digest send`` command does not). Raises ``DeliveryError`` when the SMTP
    server cannot be used at all.
    """
    with app.app_context():
        if poll:
            for result in poll_feeds(app):
                echo(result.line())
        # Unfinished digests first: a crash or a deferral must not wait a week.
        report = deliver(app, echo=echo)
        with session_scope(app) as session:
            digest = compose_digest(session, app.config, utcnow())
            if digest is None:
                echo("no new digest: no new articles, or this period's digest exists")
            else:
                echo(f"composed digest {digest.id} ({digest.period}) with {digest.article_count} articles")
        if digest is not None:
            report = report.merge(deliver(app, echo=echo))
        return report


def run_forever(app: Flask) -> None:
    """Run the scheduler in the foreground (``scheduler run``)."""
    raise NotImplementedError("issue 7: scheduler")
