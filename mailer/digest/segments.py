"""Readers grouped by what they receive: (topics, language) segments.

A digest is rendered once per segment, never per reader. Readers are grouped
with one GROUP BY on their stored (topics, language); stored values that mean
the same edition (a topic removed from the configuration, a language we no
longer ship) are folded into one segment, which keeps the raw keys so the
deliveries can be inserted with one INSERT ... SELECT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.config import LOCALES
from mailer.models import Subscriber, SubscriberStatus


@dataclass(frozen=True)
class Segment:
    """The readers of one edition."""

    topics: str  # sorted, comma-separated slugs; "" means every topic
    language: str
    keys: tuple[tuple[str, str], ...]  # the stored (topics, language) of its readers
    readers: int

    @property
    def wanted(self) -> frozenset[str] | None:
        """The topics of this edition; None means every topic."""
        return frozenset(self.topics.split(",")) if self.topics else None


def normalise_segment(config: Mapping[str, Any], topics: str, language: str) -> tuple[str, str]:
    """The edition a reader with these stored values receives.

    Unknown slugs are ignored; a choice left empty by that, or covering every
    topic, means every topic (a reader whose only topic was removed keeps
    getting news rather than silently nothing). A language we do not ship
    falls back to ``MAILER_LOCALE``.
    """
    known = config["TOPICS"]
    picked = {slug.strip() for slug in (topics or "").split(",")} & set(known)
    normal_topics = "" if not picked or picked == set(known) else ",".join(sorted(picked))
    normal_language = language if language in LOCALES else str(config["LOCALE"])
    return normal_topics, normal_language


def reader_segments(session: Session, config: Mapping[str, Any]) -> list[Segment]:
    """The segments of the confirmed readers, largest first."""
    rows = session.execute(
        select(Subscriber.topics, Subscriber.language, func.count())
        .where(Subscriber.status == SubscriberStatus.CONFIRMED)
        .group_by(Subscriber.topics, Subscriber.language)
    ).all()
    grouped: dict[tuple[str, str], tuple[list[tuple[str, str]], int]] = {}
    for topics, language, count in rows:
        key = normalise_segment(config, topics, language)
        keys, readers = grouped.get(key, ([], 0))
        keys.append((topics, language))
        grouped[key] = (keys, readers + int(count))
    segments = [
        Segment(topics, language, tuple(sorted(keys)), readers)
        for (topics, language), (keys, readers) in grouped.items()
    ]
    return sorted(segments, key=lambda s: (-s.readers, s.topics, s.language))
