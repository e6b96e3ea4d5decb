"""This week's digest: editions per segment, articles claimed, deliveries queued.

Everything is rendered before the first write, so on SQLite the write lock is
held for a few quick statements, not for 30 premailer runs. The digest's id
is not known while rendering: the "view in browser" link carries a marker
replaced by the id once the row exists (one replace per edition, not per
reader).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, false, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.config import LOCALES
from mailer.digest.period import digest_subject, period_key, period_start
from mailer.digest.pick import Item, new_articles, to_item
from mailer.digest.render import Rendered, new_marker, render_edition
from mailer.digest.segments import Segment, reader_segments
from mailer.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestEdition,
    DigestStatus,
    Feed,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

log = logging.getLogger("mailer.digest")


def _enough(config: Mapping[str, Any], count: int) -> bool:
    """Whether ``count`` new articles make a digest (never an empty one)."""
    return count >= max(1, int(config["DIGEST_MIN_ARTICLES"]))


def render_preview(session: Session, config: Mapping[str, Any], language: str) -> str | None:
    """The HTML the next digest's full edition would have; None when no digest is due.

    Nothing is written: the articles stay new. The "view in browser" link
    points to the archive's list, since the digest has no page yet.
    """
    articles = new_articles(session)
    if not _enough(config, len(articles)):
        return None
    rendered = render_edition(
        config, [to_item(a) for a in articles], language=language,
        subject=digest_subject(config, language, utcnow()), archive_url=f"{config['BASE_URL']}/archive/",
    )
    return rendered.html if rendered else None


def _insert_deliveries(
    session: Session, digest_id: int, edition_id: int, segment: Segment, now: datetime
) -> int:
    """One pending delivery per confirmed reader of ``segment``: one INSERT ... SELECT."""
    readers = (
        select(
            literal(digest_id), Subscriber.id, literal(edition_id), literal(DeliveryStatus.PENDING.value),
            literal(0), false(), literal(now, Delivery.created_at.type),
        )
        .where(Subscriber.status == SubscriberStatus.CONFIRMED)
        .where(or_(*(and_(Subscriber.topics == t, Subscriber.language == lang) for t, lang in segment.keys)))
    )
    columns = ["digest_id", "subscriber_id", "edition_id", "status", "attempts", "bounce", "created_at"]
    result = session.execute(insert(Delivery).from_select(columns, readers))
    count = result.rowcount  # type: ignore[attr-defined]
    if count is None or count < 0:  # a driver that does not say (seen with psycopg): count them
        count = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition_id))
    return int(count or 0)


def skip_reason(session: Session, config: Mapping[str, Any], now: datetime) -> str | None:
    """Why no digest is composed at ``now``, or None when one is due.

    One digest per period of the schedule (``period.py``); none without
    ``DIGEST_MIN_ARTICLES`` new articles; none while no reader is confirmed,
    so that the articles wait for the first readers instead of going into a
    digest nobody gets.
    """
    return _skip_reason(session, config, period_start(config["DIGEST_SCHEDULE"], config["TIMEZONE"], now))


def _skip_reason(session: Session, config: Mapping[str, Any], start: datetime) -> str | None:
    """``skip_reason`` for the period that began at ``start``."""
    key = period_key(start)
    since = start.astimezone(UTC).replace(tzinfo=None)
    if session.scalar(select(Digest.id).where(or_(Digest.period == key, Digest.created_at >= since))) is not None:
        return f"this period's digest (since {key}) exists already; the next period begins at the next scheduled time"
    count = session.scalar(select(func.count()).select_from(Article).join(Feed, Article.feed_id == Feed.id)
                           .where(Article.digest_id.is_(None), Feed.enabled.is_(True)))
    if not _enough(config, int(count or 0)):
        return f"{count} new articles since the last digest"
    if session.scalar(select(Subscriber.id).where(Subscriber.status == SubscriberStatus.CONFIRMED).limit(1)) is None:
        return f"no confirmed reader yet: the {count} new articles wait for the first"
    return None


def compose_digest(session: Session, config: Mapping[str, Any], now: datetime) -> Digest | None:
    """Compose this period's digest, or return None (see the module docstring).

    None when this period of ``MAILER_DIGEST_SCHEDULE`` has its digest
    already, including one another process inserted a moment ago, or when
    there are fewer than ``DIGEST_MIN_ARTICLES`` new articles. The caller
    commits; a rollback leaves everything as it was.
    """
    start = period_start(config["DIGEST_SCHEDULE"], config["TIMEZONE"], now)
    reason = _skip_reason(session, config, start)
    if reason is not None:
        log.info("no digest: %s", reason)
        return None
    period = period_key(start)
    articles = new_articles(session)
    if not _enough(config, len(articles)):  # taken by another composer a moment ago
        return None
    items = [to_item(article) for article in articles]
    id_marker = new_marker()
    default_language = str(config["LOCALE"])
    # The web copy in every language, so that "view in browser" opens the reader's own.
    archives = {
        language: render_edition(config, items, language=language, personal=False,
                                 subject=digest_subject(config, language, now),
                                 archive_url=archive_url(config["BASE_URL"], id_marker, language))
        for language in LOCALES
    }
    editions = _render_segments(session, config, items, now, id_marker)

    digest = Digest(period=period, subject=digest_subject(config, default_language, now),
                    status=DigestStatus.SENDING, created_at=now, article_count=len(articles))
    try:
        # A savepoint: losing the race to another composer leaves the
        # caller's transaction usable.
        with session.begin_nested():
            session.add(digest)
            session.flush()
    except IntegrityError:
        log.info("digest for %s was composed by another process: nothing to do", period)
        return None
    pages = {language: rendered.html.replace(id_marker, str(digest.id))
             for language, rendered in archives.items() if rendered is not None}
    digest.archive_html = pages.pop(default_language, "")
    digest.archive_translations = pages
    session.execute(
        update(Article).where(Article.id.in_([a.id for a in articles]), Article.digest_id.is_(None))
        .values(digest_id=digest.id).execution_options(synchronize_session=False)
    )
    queued = 0
    for segment, subject, rendered in editions:
        edition = DigestEdition(
            digest_id=digest.id, topics=segment.topics, language=segment.language, subject=subject,
            html=rendered.html.replace(id_marker, str(digest.id)),
            text=rendered.text.replace(id_marker, str(digest.id)),
        )
        session.add(edition)
        session.flush()
        queued += _insert_deliveries(session, digest.id, edition.id, segment, now)
    session.flush()
    for article in articles:  # changed by the UPDATE behind the ORM's back
        session.expire(article, ["digest_id"])
    log.info("digest %d (%s): %d articles, %d editions, %d deliveries queued",
             digest.id, period, len(articles), len(editions), queued)
    return digest


def archive_url(base_url: str, digest_id: int | str, language: str) -> str:
    """The web copy of a digest in ``language`` ("view in browser"; delivery's List-Archive too)."""
    return f"{base_url.rstrip('/')}/archive/{digest_id}?lang={language}"


def _render_segments(
    session: Session, config: Mapping[str, Any], items: list[Item], now: datetime, id_marker: str
) -> list[tuple[Segment, str, Rendered]]:
    """The edition of every segment that has news; readers of the others get nothing."""
    editions = []
    for segment in reader_segments(session, config):
        subject = digest_subject(config, segment.language, now)
        rendered = render_edition(config, items, language=segment.language, subject=subject,
                                  topics=segment.topics, archive_url=archive_url(config["BASE_URL"], id_marker,
                                                                      segment.language))
        if rendered is not None:
            editions.append((segment, subject, rendered))
    return editions
