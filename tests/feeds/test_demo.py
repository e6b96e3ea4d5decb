"""The bundled demo feed: served outside production, found by a fresh install's first fetch."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from mailer import create_app
from mailer.feeds.demo.items import ITEMS
from mailer.feeds.parse import parse_feed
from mailer.models import utcnow


def test_the_demo_feed_is_a_valid_rss_feed(client):
    response = client.get("/demo/feed.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/rss+xml"
    parsed = parse_feed(response.data, url="http://newsletter.test/demo/feed.xml")
    assert parsed.warning is None
    assert len(parsed.entries) == len(ITEMS) == 12
    entry = parsed.entries[0]
    assert entry.link == f"http://newsletter.test/demo/articoli/{ITEMS[0].slug}"
    assert entry.images == ("http://newsletter.test/demo/images/ai.png",)
    assert "<figure>" in entry.content_html  # content:encoded, with an image
    assert entry.author == ITEMS[0].author
    published = [e.published for e in parsed.entries if e.published is not None]
    assert len(published) == len(parsed.entries)
    assert published == sorted(published, reverse=True)
    assert published[0] - published[1] == timedelta(hours=10)


def test_the_demo_feed_answers_conditional_requests(client):
    first = client.get("/demo/feed.xml")
    assert first.headers["ETag"] and first.headers["Last-Modified"]
    again = client.get("/demo/feed.xml", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_demo_images_and_article_pages(client):
    image = client.get("/demo/images/security.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.get("/demo/images/nope.png").status_code == 404
    page = client.get(f"/demo/articoli/{ITEMS[2].slug}")
    assert page.status_code == 200
    assert ITEMS[2].title.encode() in page.data
    assert client.get("/demo/articoli/nope").status_code == 404


def test_no_demo_in_production(database_url: str, tmp_path: Path) -> None:
    app = create_app({"ENV": "production", "DATABASE_URL": database_url, "SECRET_KEY": "a-production-secret",
                      "SMTP_URL": "smtp://127.0.0.1:2525", "CAPTURE_MAILDIR": str(tmp_path)})
    client = app.test_client()
    for path in ("/demo/feed.xml", "/demo/images/ai.png", f"/demo/articoli/{ITEMS[0].slug}"):
        assert client.get(path).status_code == 404


def test_a_fresh_install_finds_every_demo_article(app, client, feed_server, poll, articles, add_feed_row):
    add_feed_row(feed_server.add("/demo/feed.xml", client.get("/demo/feed.xml").data))
    [result] = poll(FIRST_FETCH_DAYS=7)  # the real default window
    assert result.ok and result.new == 12, result.line()
    stored = articles()
    assert {a.topic for a in stored} == set(app.config["TOPICS"])  # every topic has news
    assert all(a.image_url and a.author and a.summary_html and a.categories for a in stored)
    assert all(utcnow() - a.published_at < timedelta(days=7) for a in stored)
    # The next poll (the feed re-rendered later, same guids) brings nothing new.
    feed_server.add("/demo/feed.xml", client.get("/demo/feed.xml").data + b"\n")
    assert poll(FIRST_FETCH_DAYS=7)[0].new == 0


@pytest.mark.parametrize("slug", [item.slug for item in ITEMS])
def test_demo_guids_are_stable(client: FlaskClient, slug: str) -> None:
    assert f"tag:newsletter-demo,2026:{slug}".encode() in client.get("/demo/feed.xml").data
