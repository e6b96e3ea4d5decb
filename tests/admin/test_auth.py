"""The login: required everywhere under /admin/, cookies, expiry, rate limit, logout."""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask

from mailer.admin import set_admin_password
from mailer.db import session_scope
from tests.admin.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, add_admin, log_in


def _admin_rules(app: Flask):
    """Every (method, URL) of the admin blueprint, with ids filled in."""
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or rule.endpoint == "admin.login":
            continue
        url = re.sub(r"<int:\w+>", "1", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, url


def test_every_admin_route_is_covered(app):
    routes = set(_admin_rules(app))
    # A smoke check of the enumeration itself: it must see the real pages.
    assert ("GET", "/admin/") in routes
    assert ("POST", "/admin/digests/1/pause") in routes
    assert ("POST", "/admin/readers/1/erase") in routes
    assert len(routes) >= 18


def test_login_is_required_everywhere(app, client, admin_account):
    for method, url in _admin_rules(app):
        response = client.open(url, method=method)
        if url.endswith(".json"):
            assert response.status_code == 401, url
            assert response.json == {"error": "login required"}
        else:
            assert response.status_code == 302, (method, url)
            assert response.headers["Location"].startswith("/admin/login"), url


def test_a_get_comes_back_to_the_page_after_login(client, admin_account):
    response = client.get("/admin/readers/?status=pending")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "next=" in location
    client.get(location)
    response = client.post(location, data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/readers/?status=pending"


@pytest.mark.parametrize("target", [
    "https://evil.example/admin/", "//evil.example/admin/", "/\\evil.example", "/archive/", "javascript:alert(1)",
    "/administrator", "http:/admin/",
    "/admin/\r\nSet-Cookie: x=1",
])
def test_login_never_redirects_elsewhere(client, admin_account, target):
    response = client.post("/admin/login", query_string={"next": target},
                           data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/"


def test_wrong_password_and_unknown_address_get_the_same_answer(client, admin_account):
    wrong = log_in(client, ADMIN_EMAIL, "not the password")
    unknown = log_in(client, "nobody@example.it", ADMIN_PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.get_data(as_text=True)
    assert "Wrong email or password." in unknown.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_login_and_logout(client, admin_account):
    response = log_in(client)
    assert response.status_code == 303
    page = client.get("/admin/")
    assert page.status_code == 200
    assert ADMIN_EMAIL in page.get_data(as_text=True)
    # Logging out is a POST: a GET (a link or an image elsewhere) cannot do it.
    assert client.get("/admin/logout").status_code == 405
    response = client.post("/admin/logout")
    assert response.status_code == 303
    assert client.get("/admin/").status_code == 302


def test_session_cookie_is_httponly_and_samesite(client, admin_account):
    response = log_in(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http in tests and development


def test_session_cookie_is_secure_in_production(make_app):
    app = make_app(ENV="production", SECRET_KEY="a production secret", WTF_CSRF_ENABLED=False,
                   RATELIMIT_ENABLED=False)
    with session_scope(app) as s:
        add_admin(s)
    response = log_in(app.test_client())
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_admin_pages_are_not_cached_or_framed(admin_client):
    response = admin_client.get("/admin/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_session_expires(app, admin_client, monkeypatch):
    assert admin_client.get("/admin/").status_code == 200
    hours = app.config["ADMIN_SESSION_HOURS"]
    later = time.time() + hours * 3600 + 60
    monkeypatch.setattr("mailer.admin.auth.time.time", lambda: later)
    assert admin_client.get("/admin/").status_code == 302


def test_a_password_change_ends_other_sessions(app, admin_client):
    assert admin_client.get("/admin/").status_code == 200
    with session_scope(app) as s:
        set_admin_password(s, ADMIN_EMAIL, "a completely new password")
    assert admin_client.get("/admin/").status_code == 302


def test_a_forged_session_is_refused(app, client, admin_account):
    with client.session_transaction() as sess:
        sess["admin_id"] = 1
        sess["admin_fp"] = "0" * 16
        sess["admin_at"] = int(time.time())
    assert client.get("/admin/").status_code == 302


@pytest.fixture
def limited_app(make_app):
    """The app with the rate limits on (the testing config turns them off)."""
    app = make_app(RATELIMIT_ENABLED=True, ADMIN_LOGIN_LIMIT="3/minute", ADMIN_ACCOUNT_LOGIN_LIMIT="5/minute")
    with session_scope(app) as s:
        add_admin(s)
    return app


def test_login_rate_limit_per_ip(limited_app):
    client = limited_app.test_client()
    for _ in range(3):
        assert log_in(client, password="wrong password!").status_code == 401
    response = log_in(client)  # even the right password: this IP must wait
    assert response.status_code == 429
    assert "Retry-After" in response.headers
    assert "Too many login attempts" in response.get_data(as_text=True)
    # Another address is not affected.
    other = limited_app.test_client()
    assert log_in(other, environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code == 303


def test_login_rate_limit_per_account_across_ips(limited_app):
    client = limited_app.test_client()
    for n in range(5):
        ip = f"198.51.100.{n + 1}"
        assert log_in(client, password="wrong password!", environ_base={"REMOTE_ADDR": ip}).status_code == 401
    response = log_in(client, environ_base={"REMOTE_ADDR": "198.51.100.50"})
    assert response.status_code == 429


def test_successful_logins_do_not_count(limited_app):
    client = limited_app.test_client()
    for _ in range(5):
        assert log_in(client).status_code == 303
        client.post("/admin/logout")


def test_login_required_decorator_for_other_blueprints(app, client, admin_account):
    from mailer.admin import login_required

    app.add_url_rule("/dev/secret", "secret", login_required(lambda: "captured mail"))
    response = client.get("/dev/secret")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/login?next=/dev/secret"
    assert log_in(client).status_code == 303
    assert client.get("/dev/secret").get_data(as_text=True) == "captured mail"


def test_captured_mail_link_follows_the_setting(app, admin_client, make_app):
    assert 'href="/dev/mail/"' in admin_client.get("/admin/").get_data(as_text=True)
    client = make_app(SHOW_CAPTURED_MAIL=False).test_client()
    assert log_in(client).status_code == 303
    assert 'href="/dev/mail/"' not in client.get("/admin/").get_data(as_text=True)
