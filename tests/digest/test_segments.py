"""Segments: confirmed readers grouped by the edition they receive."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy.orm import Session

from mailer.digest.segments import normalise_segment, reader_segments
from mailer.models import Subscriber, SubscriberStatus


def test_confirmed_readers_group_by_topics_and_language(
    app: Flask, session: Session, add_reader: Callable[..., Subscriber]
) -> None:
    for _ in range(3):
        add_reader(language="it")
    add_reader(topics="ai,security", language="it")
    add_reader(topics="ai,security", language="en")
    add_reader(status=SubscriberStatus.PENDING, topics="web")
    add_reader(status=SubscriberStatus.UNSUBSCRIBED, topics="mobile")
    add_reader(status=SubscriberStatus.BOUNCED)
    segments = reader_segments(session, app.config)
    assert [(s.topics, s.language, s.readers) for s in segments] == [
        ("", "it", 3), ("ai,security", "en", 1), ("ai,security", "it", 1)]
    assert segments[0].wanted is None
    assert segments[1].wanted == frozenset({"ai", "security"})


def test_stored_values_that_mean_the_same_edition_fold_together(
    app: Flask, session: Session, add_reader: Callable[..., Subscriber]
) -> None:
    app.config["LOCALE"] = "it"
    add_reader(topics="ai,retired", language="it")  # a topic since removed from TOPICS
    add_reader(topics="ai", language="de")  # a language we do not ship: MAILER_LOCALE
    add_reader(topics="ai", language="it")
    add_reader(topics="retired", language="it")  # nothing known left: every topic
    add_reader(topics=",".join(app.config["TOPICS"]), language="it")  # every topic, spelled out
    segments = reader_segments(session, app.config)
    assert [(s.topics, s.language, s.readers) for s in segments] == [("ai", "it", 3), ("", "it", 2)]
    assert segments[0].keys == (("ai", "de"), ("ai", "it"), ("ai,retired", "it"))


def test_normalise_segment() -> None:
    config = {"TOPICS": {"ai": {}, "web": {}, "mobile": {}}, "LOCALE": "it"}
    assert normalise_segment(config, "web, ai", "en") == ("ai,web", "en")
    assert normalise_segment(config, "", "xx") == ("", "it")
    assert normalise_segment(config, "ai,web,mobile", "it") == ("", "it")
    assert normalise_segment(config, "<script>", "it") == ("", "it")
