"""CSRF: every admin form carries a token, and every admin POST without one is refused."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from mailer.db import session_scope
from mailer.models import DigestStatus, SubscriberStatus
from tests.admin import seed
from tests.admin.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, add_admin, csrf_token


class FormFinder(HTMLParser):
    """Collects each POST form of a page and whether it holds a csrf_token field."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "form":
            self._current = {"action": values.get("action"), "method": (values.get("method") or "get").lower(),
                             "token": False}
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and values.get("name") == "csrf_token":
            self._current["token"] = bool(values.get("value"))

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


@pytest.fixture
def csrf_app(make_app):
    """The app with CSRF checks on (the testing config turns them off), and data on every page."""
    app = make_app(WTF_CSRF_ENABLED=True)
    with session_scope(app) as s:
        add_admin(s)
        reader = seed.reader(s, "lettore@example.it")
        seed.feed(s, "https://www.example.it/feed/")
        sending = seed.digest(s, "2026-W01", DigestStatus.SENDING)
        seed.delivery(s, sending, reader)
        paused = seed.digest(s, "2026-W02", DigestStatus.PAUSED)
        seed.delivery(s, paused, seed.reader(s, "altro@example.it", SubscriberStatus.CONFIRMED))
    return app


def _log_in(client):
    page = client.get("/admin/login").get_data(as_text=True)
    token = csrf_token(page)
    assert token, "the login form has no CSRF token"
    # Without the token the login itself is refused.
    refused = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert refused.status_code == 400
    response = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                 "csrf_token": token})
    assert response.status_code == 303


PAGES = ["/admin/", "/admin/readers/", "/admin/readers/1", "/admin/readers/import", "/admin/feeds/",
         "/admin/digests/", "/admin/digests/1", "/admin/digests/2"]


def test_every_form_carries_a_token(csrf_app):
    client = csrf_app.test_client()
    _log_in(client)
    actions = set()
    for url in PAGES:
        page = client.get(url)
        assert page.status_code == 200, url
        finder = FormFinder()
        finder.feed(page.get_data(as_text=True))
        for form in finder.forms:
            if form["method"] == "post":
                assert form["token"], f"a form of {url} posting to {form['action']} has no CSRF token"
                actions.add(re.sub(r"/\d+", "/<id>", form["action"]))
    # The pages above show every kind of form the admin has.
    assert actions >= {
        "/admin/logout", "/admin/readers/<id>/unsubscribe", "/admin/readers/<id>/erase", "/admin/readers/import",
        "/admin/feeds/", "/admin/feeds/<id>/disable", "/admin/digests/send", "/admin/digests/<id>/pause",
        "/admin/digests/<id>/resume",
    }


def test_every_post_without_a_token_is_refused(csrf_app):
    client = csrf_app.test_client()
    _log_in(client)
    posts = []
    for rule in csrf_app.url_map.iter_rules():
        if rule.endpoint.startswith("admin.") and "POST" in rule.methods:
            posts.append(re.sub(r"<int:\w+>", "1", rule.rule))
    assert len(posts) >= 10
    for url in posts:
        response = client.post(url, data={"confirm": "y", "url": "https://example.org/feed", "reason": "x"})
        assert response.status_code == 400, url
        assert "CSRF" in response.get_data(as_text=True) or "form expired" in response.get_data(as_text=True), url
    # Nothing changed: still logged in, reader still confirmed, digest still sending.
    assert client.get("/admin/").status_code == 200
    with session_scope(csrf_app) as s:
        from mailer.models import Digest, Subscriber

        assert s.get_one(Subscriber, 1).status is SubscriberStatus.CONFIRMED
        assert s.get_one(Digest, 1).status is DigestStatus.SENDING


def test_a_post_with_the_token_goes_through(csrf_app):
    client = csrf_app.test_client()
    _log_in(client)
    page = client.get("/admin/feeds/").get_data(as_text=True)
    response = client.post("/admin/feeds/1/disable", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303
    with session_scope(csrf_app) as s:
        from mailer.models import Feed

        assert s.get_one(Feed, 1).enabled is False


def test_the_upload_limit_holds_before_the_csrf_check_reads_the_body(csrf_app, monkeypatch):
    import io

    client = csrf_app.test_client()
    _log_in(client)
    token = csrf_token(client.get("/admin/readers/import").get_data(as_text=True))
    csrf_app.config["ADMIN_IMPORT_MAX_BYTES"] = 2000
    big = {"csrf_token": token, "file": (io.BytesIO(b"email\n" + b"someone@example.it\n" * 200), "big.csv")}
    assert client.post("/admin/readers/import", data=big, content_type="multipart/form-data").status_code == 413
