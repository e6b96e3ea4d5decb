"""The web archive: list, one digest without tokens, RSS feed; and the preview."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from defusedxml import ElementTree
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.digest import PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN, compose_digest, render_preview
from mailer.models import Article, Digest, DigestStatus, Subscriber
from tests.digest.conftest import NOW


def _digest(session: Session, period: str, subject: str, status: DigestStatus = DigestStatus.FINISHED,
            days_ago: int = 0) -> Digest:
    digest = Digest(period=period, subject=subject, status=status, created_at=NOW - timedelta(days=days_ago),
                    archive_html="<!DOCTYPE html><html><head><style>@media (max-width:620px){.x{color:red}}</style>"
                                 f"</head><body style='margin:0'><p class='x'>{subject} body</p></body></html>",
                    article_count=3)
    session.add(digest)
    session.commit()
    return digest


def test_the_archive_lists_sent_digests_newest_first(client: FlaskClient, session: Session) -> None:
    _digest(session, "2026-W46", "Old one", days_ago=14)
    _digest(session, "2026-W48", "New one")
    _digest(session, "2026-W47", "Paused one", DigestStatus.PAUSED, days_ago=7)
    _digest(session, "2026-W45", "Still sending", DigestStatus.SENDING, days_ago=21)
    page = client.get("/archive/").get_data(as_text=True)
    assert page.index("New one") < page.index("Old one") < page.index("Still sending")
    assert "Paused one" not in page
    assert 'type="application/rss+xml"' in page


def test_the_archive_pages(client: FlaskClient, session: Session) -> None:
    for n in range(25):
        _digest(session, f"2025-W{n + 1:02d}", f"Digest number {n}", days_ago=25 - n)
    first = client.get("/archive/").get_data(as_text=True)
    assert "Digest number 24" in first and "Digest number 4" not in first and "page=2" in first
    second = client.get("/archive/?page=2").get_data(as_text=True)
    assert "Digest number 4" in second and "Digest number 5" not in second
    assert client.get("/archive/?page=9").status_code == 404
    assert client.get("/archive/?page=-3").status_code == 404


def test_a_digest_page_shows_the_archive_copy_without_tokens(
    app_context: Flask, client: FlaskClient, session: Session, add_article: Callable[..., Article],
    add_reader: Callable[..., Subscriber],
) -> None:
    article = add_article("Una notizia da archiviare")
    add_reader()
    digest = compose_digest(session, app_context.config, NOW)
    session.commit()
    assert digest is not None
    response = client.get(f"/archive/{digest.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert article.title in page and digest.subject in page
    assert UNSUBSCRIBE_TOKEN not in page and PREFERENCES_TOKEN not in page
    assert "/unsubscribe/" not in page
    assert "@media only screen and (max-width: 620px)" in page  # the mail's own styles came along
    assert '<link rel="stylesheet"' in page  # the site's page layout around it


def test_view_in_browser_opens_the_copy_in_the_readers_language(
    app_context: Flask, client: FlaskClient, session: Session, add_article: Callable[..., Article],
    add_reader: Callable[..., Subscriber],
) -> None:
    """An Italian reader's "view in browser" is Italian, an English reader's English, whatever the default."""
    add_article("Una notizia per tutti")
    add_reader(language="it")
    add_reader(language="en")
    digest = compose_digest(session, app_context.config, NOW)
    session.commit()
    assert digest is not None and set(digest.archive_translations or {}) == {"it"}  # en is the tests' LOCALE
    for edition in digest.editions:
        link = f"{app_context.config['BASE_URL']}/archive/{digest.id}?lang={edition.language}"
        assert link in edition.html and link in edition.text
        page = client.get(link.removeprefix(app_context.config["BASE_URL"])).get_data(as_text=True)
        assert f'<html lang="{edition.language}"' in page
        assert edition.subject in page  # the page's title: the subject that reader got
        bar = {"it": "Archivio della newsletter", "en": "Newsletter archive"}[edition.language]
        assert bar in page  # the page around the copy speaks the same language
        assert UNSUBSCRIBE_TOKEN not in page and "/unsubscribe/" not in page
    # Without ?lang=, the browser's language; a language without a copy falls back to the default one.
    italian = client.get(f"/archive/{digest.id}", headers={"Accept-Language": "it-IT,it;q=0.9"})
    assert '<html lang="it"' in italian.get_data(as_text=True)
    digest.archive_translations = {}
    session.commit()
    assert '<html lang="en"' in client.get(f"/archive/{digest.id}?lang=it").get_data(as_text=True)


def test_an_unknown_digest_is_404(client: FlaskClient) -> None:
    assert client.get("/archive/999").status_code == 404
    assert client.get("/archive/nope").status_code == 404


def test_only_the_styles_and_body_of_a_stored_copy_are_shown(client: FlaskClient, session: Session) -> None:
    digest = _digest(session, "2026-W48", "x")
    digest.archive_html = "<html><head><style>.a{}</style><script>alert(1)</script></head><body>b</body></html>"
    session.commit()
    page = client.get(f"/archive/{digest.id}").get_data(as_text=True)
    assert "alert(1)" not in page


def test_the_rss_feed_lists_digests_with_their_headlines(
    client: FlaskClient, session: Session, add_article: Callable[..., Article]
) -> None:
    digest = _digest(session, "2026-W48", "Le notizie & «altro»")
    add_article("Titolo <uno> & due", digest_id=digest.id)
    _digest(session, "2026-W47", "Paused", DigestStatus.PAUSED)
    response = client.get("/archive/feed.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/rss+xml"
    root = ElementTree.fromstring(response.data)
    items = root.findall("./channel/item")
    assert [i.findtext("title") for i in items] == ["Le notizie & «altro»"]
    assert items[0].findtext("link") == f"http://newsletter.test/archive/{digest.id}"
    assert items[0].findtext("pubDate") == "Wed, 25 Nov 2026 08:00:00 +0000"
    description = items[0].findtext("description") or ""
    assert '<a href="https://news.example.it/articoli/' in description
    assert "Titolo &lt;uno&gt; &amp; due" in description


def test_the_preview_renders_without_writing(
    app_context: Flask, session: Session, add_article: Callable[..., Article]
) -> None:
    assert render_preview(session, app_context.config, "it") is None
    article = add_article("Anteprima")
    html = render_preview(session, app_context.config, "en")
    assert html is not None and article.title in html and '<html lang="en"' in html
    assert f'href="{app_context.config["BASE_URL"]}/archive/"' in html
    assert session.scalar(select(func.count()).select_from(Digest)) == 0
    session.refresh(article)
    assert article.digest_id is None


def test_the_preview_command_writes_the_file(
    runner: FlaskCliRunner, add_article: Callable[..., Article], tmp_path: Path
) -> None:
    out = tmp_path / "preview.html"
    result = runner.invoke(args=["digest", "preview", "--out", str(out)])
    assert result.exit_code == 0 and "no new articles" in result.output
    article = add_article("Dalla riga di comando")
    result = runner.invoke(args=["digest", "preview", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert article.title in out.read_text(encoding="utf-8")
