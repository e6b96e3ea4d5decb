"""Feeds: state, failing feeds flagged, add, disable and enable."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mailer.models import Feed, utcnow
from tests.admin import seed


def _row(html: str, feed_id: int) -> str:
    match = re.search(rf'<tr class="([^"]*)" data-feed-id="{feed_id}">(.*?)</tr>', html, re.S)
    assert match, feed_id
    return match.group(1) + match.group(2)


def test_feed_states(app, admin_client, session):
    alert = app.config["FEED_FAILURE_ALERT"]
    ok = seed.feed(session, "https://ok.example/feed", title="Fine", last_success_at=utcnow())
    failing = seed.feed(session, "https://bad.example/feed", consecutive_failures=alert,
                        last_error="HTTP 500 <b>oops</b>", last_error_at=utcnow(), last_success_at=utcnow())
    flaky = seed.feed(session, "https://flaky.example/feed", consecutive_failures=alert - 1, last_error="timeout",
                      last_error_at=utcnow())
    off = seed.feed(session, "https://off.example/feed", enabled=False)
    session.commit()
    html = admin_client.get("/admin/feeds/").get_data(as_text=True)
    assert ">ok<" in _row(html, ok.id)
    assert _row(html, failing.id).startswith("failing") and ">failing<" in _row(html, failing.id)
    assert "HTTP 500 &lt;b&gt;oops&lt;/b&gt;" in _row(html, failing.id)
    assert f"{alert} failures in a row" in _row(html, failing.id)
    assert not _row(html, flaky.id).startswith("failing") and "timeout" in _row(html, flaky.id)
    assert _row(html, off.id).startswith("disabled") and "/enable" in _row(html, off.id)


def test_add_a_feed(admin_client, session):
    response = admin_client.post("/admin/feeds/", data={"url": "  https://www.example.it/feed/  "})
    assert response.status_code == 303
    feed = session.scalar(select(Feed))
    assert feed.url == "https://www.example.it/feed/" and feed.enabled and feed.source == "admin"
    again = admin_client.post("/admin/feeds/", data={"url": "https://www.example.it/feed/"})
    assert again.status_code == 400
    assert "already in the list" in again.get_data(as_text=True)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://example.it/feed", "file:///etc/passwd", "https://",
                                 "not a url", "http://example.it:99999/"])
def test_add_refuses_a_bad_url(admin_client, session, url):
    response = admin_client.post("/admin/feeds/", data={"url": url})
    assert response.status_code == 400
    assert "Enter a valid http:// or https:// address." in response.get_data(as_text=True)
    assert session.scalar(select(Feed)) is None


@pytest.mark.parametrize(("url", "address"), [
    ("http://10.0.0.5/feed.xml", "10.0.0.5"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("https://[fd00::1]:8443/rss", "fd00::1"),
    ("http://[::ffff:192.168.1.1]/rss", "::ffff:c0a8:101"),
])
def test_add_refuses_a_literal_internal_address(admin_client, session, url, address):
    response = admin_client.post("/admin/feeds/", data={"url": url})
    assert response.status_code == 400
    assert (f"{address} is not a public address: feeds can reach the internal network only where"
            " MAILER_FEED_ALLOW_NETWORKS allows it.") in response.get_data(as_text=True)
    assert session.scalar(select(Feed)) is None


def test_disable_and_enable(admin_client, session):
    feed = seed.feed(session, "https://www.example.it/feed/")
    session.commit()
    assert admin_client.post(f"/admin/feeds/{feed.id}/disable").status_code == 303
    session.expire_all()
    assert session.get(Feed, feed.id).enabled is False
    assert "Feed disabled" in admin_client.get("/admin/feeds/").get_data(as_text=True)
    assert admin_client.post(f"/admin/feeds/{feed.id}/enable").status_code == 303
    session.expire_all()
    assert session.get(Feed, feed.id).enabled is True
    assert admin_client.post("/admin/feeds/9999/disable").status_code == 404
