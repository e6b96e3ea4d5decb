"""compose_digest: one digest per week, editions per segment, deliveries per reader."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.db import get_sessionmaker
from mailer.digest import PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN, compose, skip_reason
from mailer.digest import compose_digest as compose_digest_
from mailer.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestEdition,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
)
from tests.digest.conftest import NOW


def compose_digest(session: Session, app: Flask, now=NOW) -> Digest | None:
    """Compose and commit, as the scheduler does."""
    digest = compose_digest_(session, app.config, now)
    session.commit()
    return digest


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def edition_of(session: Session, topics: str, language: str = "en") -> DigestEdition:
    edition = session.scalar(select(DigestEdition).where(DigestEdition.topics == topics,
                                                         DigestEdition.language == language))
    assert edition is not None, f"no edition for {topics!r}/{language}"
    return edition


def test_a_digest_carries_every_new_article_to_every_confirmed_reader(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    app_context.config["LOCALE"] = "it"  # the product's default
    articles = [add_article(topic=topic) for topic in ("ai", "security", "web")]
    everyone = add_reader(language="it")
    add_reader(status=SubscriberStatus.PENDING)
    add_reader(status=SubscriberStatus.UNSUBSCRIBED)

    digest = compose_digest(session, app_context)

    assert digest is not None
    assert digest.period == "2026-11-23 08:00+01:00"  # this week's turn of "0 8 * * mon" in Rome
    assert digest.status is DigestStatus.SENDING
    assert digest.subject == "Le notizie della settimana – 25 novembre 2026"
    assert digest.article_count == 3
    for article in articles:
        session.refresh(article)
        assert article.digest_id == digest.id
    deliveries = session.scalars(select(Delivery)).all()
    assert [(d.subscriber_id, d.status, d.attempts, d.bounce) for d in deliveries] == [
        (everyone.id, DeliveryStatus.PENDING, 0, False)]
    edition = session.get(DigestEdition, deliveries[0].edition_id)
    assert edition is not None and (edition.topics, edition.language) == ("", "it")
    assert edition.subject == digest.subject
    for article in articles:
        assert article.title in edition.html and article.title in edition.text


def test_each_segment_gets_its_own_sections_and_language(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    ai = add_article("Un modello nuovo", topic="ai")
    security = add_article("Una falla grave", topic="security")
    web = add_article("Un CSS diverso", topic="web")
    all_it = [add_reader(language="it") for _ in range(2)]
    security_en = add_reader(topics="security", language="en")
    ai_web = add_reader(topics="ai,web", language="it")
    nothing_new = add_reader(topics="hardware,mobile", language="it")

    compose_digest(session, app_context)

    assert count(session, DigestEdition) == 3  # hardware,mobile has no news: no edition
    english = edition_of(session, "security", "en")
    assert english.subject == "This week's news – November 25, 2026"
    assert '<html lang="en"' in english.html
    assert security.title in english.html and security.title in english.text
    for other in (ai, web):
        assert other.title not in english.html and other.title not in english.text
    assert "Cybersecurity" in english.html and "Artificial intelligence" not in english.html
    mixed = edition_of(session, "ai,web", "it")
    assert ai.title in mixed.html and web.title in mixed.html and security.title not in mixed.html
    assert mixed.html.index("Intelligenza artificiale") < mixed.html.index("Web</h2>")

    by_reader = {d.subscriber_id: d.edition_id for d in session.scalars(select(Delivery))}
    assert set(by_reader) == {*(r.id for r in all_it), security_en.id, ai_web.id}
    assert nothing_new.id not in by_reader
    assert by_reader[security_en.id] == english.id
    assert by_reader[ai_web.id] == mixed.id
    assert {by_reader[r.id] for r in all_it} == {edition_of(session, "", "it").id}


def test_readers_of_folded_segments_share_one_edition(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    add_article(topic="ai")
    readers = [add_reader(topics="ai"), add_reader(topics="ai", language="de"), add_reader(topics="ai,retired")]
    compose_digest(session, app_context)
    assert count(session, DigestEdition) == 1
    assert {d.subscriber_id for d in session.scalars(select(Delivery))} == {r.id for r in readers}


def test_a_rerun_in_the_same_week_composes_nothing(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    add_article()
    add_reader()
    first = compose_digest(session, app_context)
    assert first is not None
    late = add_article()  # news that arrives later in the same week
    add_reader()
    assert compose_digest(session, app_context, NOW + timedelta(days=3)) is None
    assert (count(session, Digest), count(session, DigestEdition), count(session, Delivery)) == (1, 1, 1)
    session.refresh(late)
    assert late.digest_id is None

    # Next week: a new digest with only what the first did not carry.
    second = compose_digest(session, app_context, NOW + timedelta(days=7))
    assert second is not None and second.period == "2026-11-30 08:00+01:00"
    assert second.article_count == 1
    session.refresh(late)
    assert late.digest_id == second.id
    assert count(session, Delivery) == 3


def test_no_digest_below_the_minimum_and_nothing_is_written(
    app: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    add_reader()
    with app.app_context():
        assert compose_digest(session, app) is None  # no articles at all
    article = add_article()
    app.config["DIGEST_MIN_ARTICLES"] = 2
    with app.app_context():
        assert compose_digest(session, app) is None
    assert (count(session, Digest), count(session, DigestEdition), count(session, Delivery)) == (0, 0, 0)
    session.refresh(article)
    assert article.digest_id is None


def test_losing_the_race_for_the_week_leaves_the_callers_transaction_usable(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    article = add_article()
    add_reader()
    render_segments = compose._render_segments

    def other_process_wins(*args, **kwargs):
        # Another scheduler commits this week's digest while we render.
        with get_sessionmaker(app_context)() as other, other.begin():
            other.add(Digest(period="2026-11-23 08:00+01:00", subject="theirs", status=DigestStatus.SENDING,
                             created_at=NOW - timedelta(days=5)))
        return render_segments(*args, **kwargs)

    monkeypatch.setattr(compose, "_render_segments", other_process_wins)
    assert compose_digest_(session, app_context.config, NOW) is None
    # The savepoint rolled back only our insert: the session still works.
    assert session.scalar(select(func.count()).select_from(Digest)) == 1
    session.commit()
    assert session.scalars(select(Digest.subject)).all() == ["theirs"]
    session.refresh(article)
    assert article.digest_id is None
    assert count(session, Delivery) == 0


def test_the_cap_leaves_a_more_on_the_site_link_and_no_stale_articles(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    app_context.config["DIGEST_MAX_ARTICLES"] = 3
    articles = [add_article(f"Notizia {n}", published_at=NOW - timedelta(hours=n)) for n in range(1, 6)]
    add_reader()
    digest = compose_digest(session, app_context)
    assert digest is not None
    edition = edition_of(session, "")
    shown = [a.title for a in articles[:3]]
    assert all(title in edition.html and title in edition.text for title in shown)
    assert "Notizia 4" not in edition.html and "Notizia 5" not in edition.text
    assert "2 more articles on the site" in edition.html
    assert f'href="{app_context.config["SITE_URL"]}"' in edition.html
    assert "2 more articles on the site:\n" + app_context.config["SITE_URL"] in edition.text
    # The two left out belong to this digest too: never stale next week.
    for article in articles:
        session.refresh(article)
        assert article.digest_id == digest.id


def test_placeholders_survive_premailer_and_only_our_links_carry_them(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    # A hostile feed fishing for readers' tokens, plainly and through entities.
    add_article(f"Vinci! {UNSUBSCRIBE_TOKEN}",
                url=f"https://evil.example/?u={UNSUBSCRIBE_TOKEN}&p={PREFERENCES_TOKEN}",
                summary_html=(f'<p><a href="https://evil.example/{PREFERENCES_TOKEN}">clicca</a> '
                              "x0UNSUBSCRIBE&#84;OKEN0x x0PREFERENCES<b></b>TOKEN0x "
                              f"x0UNSUBS{UNSUBSCRIBE_TOKEN}CRIBETOKEN0x</p>"),
                summary_text=f"testo {PREFERENCES_TOKEN}")
    add_reader()
    digest = compose_digest(session, app_context)
    assert digest is not None
    edition = edition_of(session, "")
    base = app_context.config["BASE_URL"]
    for part in (edition.html, edition.text):
        assert part.count(UNSUBSCRIBE_TOKEN) == 1
        assert part.count(PREFERENCES_TOKEN) == 1
        assert f"{base}/unsubscribe/{UNSUBSCRIBE_TOKEN}" in part
        assert f"{base}/preferences/{PREFERENCES_TOKEN}" in part
        assert f"{base}/archive/{digest.id}" in part
    assert f'href="{base}/unsubscribe/{UNSUBSCRIBE_TOKEN}"' in edition.html
    assert UNSUBSCRIBE_TOKEN not in digest.archive_html and PREFERENCES_TOKEN not in digest.archive_html


def test_the_archive_copy_has_no_reader_links(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    article = add_article(topic="mobile")
    add_reader(topics="ai")  # no edition for them; the archive is made all the same
    digest = compose_digest(session, app_context)
    assert digest is not None
    assert count(session, DigestEdition) == 0 and count(session, Delivery) == 0
    assert article.title in digest.archive_html
    assert "/unsubscribe/" not in digest.archive_html and "/preferences/" not in digest.archive_html
    assert f'href="{app_context.config["BASE_URL"]}/"' in digest.archive_html  # subscribe


def test_an_edition_over_the_size_limit_shows_fewer_articles_and_warns(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app_context.config["DIGEST_MAX_HTML_BYTES"] = 30_000
    long_summary = "<p>" + "Un paragrafo lungo che riempie la mail. " * 20 + "</p>"
    for n in range(30):
        add_article(f"Notizia {n}", summary_html=long_summary, published_at=NOW - timedelta(hours=n + 1))
    add_reader()
    with caplog.at_level(logging.WARNING, logger="mailer.digest"):
        compose_digest(session, app_context)
    edition = edition_of(session, "")
    assert len(edition.html.encode()) <= 30_000
    assert "Notizia 0" in edition.html and "Notizia 29" not in edition.html
    assert "more articles on the site" in edition.html
    assert any("over 30000" in record.getMessage() for record in caplog.records)


def test_a_reader_who_unsubscribes_before_compose_gets_nothing(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    add_article()
    reader = add_reader()
    stays = add_reader()
    reader.status = SubscriberStatus.UNSUBSCRIBED
    session.commit()
    compose_digest(session, app_context)
    assert session.scalars(select(Delivery.subscriber_id)).all() == [stays.id]


def test_premailer_runs_once_per_segment_never_per_reader(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mailer.digest import render

    runs: list[int] = []
    inline_css = render.inline_css

    def counted(html: str, base_url: str) -> str:
        runs.append(1)
        return inline_css(html, base_url)

    monkeypatch.setattr(render, "inline_css", counted)
    add_article(topic="ai")
    add_article(topic="web")
    for _ in range(20):
        add_reader()
        add_reader(topics="ai", language="en")
        add_reader(topics="web")
    compose_digest(session, app_context)
    assert count(session, Delivery) == 60
    assert len(runs) == 3 + 2  # three segments and the archive copy in Italian and English


def test_a_daily_schedule_composes_a_digest_a_day(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    app_context.config["DIGEST_SCHEDULE"] = "0 7 * * *"
    add_reader()
    add_article()
    assert compose_digest(session, app_context, NOW) is not None
    add_article()
    assert compose_digest(session, app_context, NOW + timedelta(hours=3)) is None  # the same day's period
    assert "exists already" in (skip_reason(session, app_context.config, NOW + timedelta(hours=3)) or "")
    tomorrow = compose_digest(session, app_context, NOW + timedelta(days=1))
    assert tomorrow is not None and tomorrow.period == "2026-11-26 07:00+01:00" and tomorrow.article_count == 1


def test_no_confirmed_reader_no_digest_the_articles_wait(
    app_context: Flask, session: Session, add_article: Callable[..., Article], add_reader: Callable[..., Subscriber]
) -> None:
    article = add_article()
    add_reader(status=SubscriberStatus.PENDING)
    assert compose_digest(session, app_context) is None
    reason = skip_reason(session, app_context.config, NOW)
    assert reason == "no confirmed reader yet: the 1 new articles wait for the first"
    session.refresh(article)
    assert article.digest_id is None and count(session, Digest) == 0
    add_reader()  # the first confirmed reader gets them
    digest = compose_digest(session, app_context)
    assert digest is not None and digest.article_count == 1
