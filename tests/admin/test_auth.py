"""The login: required everywhere under /admin/, cookies, expiry, rate limit, logout."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from mailer.admin import set_admin_password
from mailer.db import session_scope
from mailer.models import AdminSession, utcnow
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


def test_session_expires(app, admin_client):
    assert admin_client.get("/admin/").status_code == 200
    hours = app.config["ADMIN_SESSION_HOURS"]
    with session_scope(app) as s:
        row = s.scalar(select(AdminSession))
        assert row is not None
        assert timedelta(hours=hours - 1) < row.expires_at - row.created_at <= timedelta(hours=hours)
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert admin_client.get("/admin/").status_code == 302


def test_a_password_change_ends_other_sessions(app, admin_client):
    assert admin_client.get("/admin/").status_code == 200
    with session_scope(app) as s:
        set_admin_password(s, ADMIN_EMAIL, "a completely new password")
    assert admin_client.get("/admin/").status_code == 302
    with session_scope(app) as s:
        assert s.scalar(select(func.count()).select_from(AdminSession)) == 0


def test_a_forged_session_is_refused(app, client, admin_account):
    with client.session_transaction() as sess:
        sess["admin_session"] = "a guessed id"
    assert client.get("/admin/").status_code == 302


def _session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return str(cookie.value)


def test_a_cookie_copied_before_logout_no_longer_opens_the_dashboard(app, admin_account):
    """Logout ends the session on the server: replaying the old cookie leads to the login page."""
    owner = app.test_client()
    assert log_in(owner).status_code == 303
    copied = _session_cookie(owner)
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/admin/").status_code == 200  # the copy works while the owner is logged in
    assert owner.post("/admin/logout").status_code == 303
    replay = thief.get("/admin/readers/")
    assert replay.status_code == 302 and replay.headers["Location"].startswith("/admin/login")
    with session_scope(app) as s:
        assert s.scalar(select(func.count()).select_from(AdminSession)) == 0


def test_login_gives_a_new_session_id(app, admin_account):
    """Session fixation: an id planted before the login is not the one that logs in."""
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["admin_session"] = "planted-by-someone-else"
        sess["other"] = "kept from before"
    assert log_in(client).status_code == 303
    with client.session_transaction() as sess:
        assert sess["admin_session"] != "planted-by-someone-else" and "other" not in sess
        first = sess["admin_session"]
    client.post("/admin/logout")
    assert log_in(client).status_code == 303
    with client.session_transaction() as sess:
        assert sess["admin_session"] != first
    # The cookie carries the id, and the table only its hash.
    with session_scope(app) as s:
        assert s.scalar(select(AdminSession.id_hash)) != first


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


def test_strangers_failing_on_the_account_do_not_lock_the_owner_out(limited_app):
    """Ten wrong passwords from elsewhere: the owner still logs in from their own address."""
    client = limited_app.test_client()
    for n in range(10):
        ip = f"198.51.100.{n % 2 + 1}"  # two addresses, as in the report
        answer = log_in(client, password="wrong password!", environ_base={"REMOTE_ADDR": ip})
        assert answer.status_code in (401, 429)
    assert log_in(client, environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 303


def test_the_account_limit_holds_back_sources_that_failed_on_it(limited_app):
    """Past the account-wide limit, a source that failed on the account waits, even with the right password."""
    client = limited_app.test_client()
    for n in range(5):  # five sources, one failure each: the account's 5/minute is spent
        ip = f"198.51.100.{n + 1}"
        assert log_in(client, password="wrong password!", environ_base={"REMOTE_ADDR": ip}).status_code == 401
    # A sixth source gets its password checked once; having failed, it waits.
    assert log_in(client, password="wrong password!", environ_base={"REMOTE_ADDR": "198.51.100.50"}).status_code == 401
    assert log_in(client, environ_base={"REMOTE_ADDR": "198.51.100.50"}).status_code == 429
    assert log_in(client, environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 429
    # A source that never failed on it logs in.
    assert log_in(client, environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 303


def test_an_ipv6_source_is_counted_by_its_64(limited_app):
    """One host hands itself endless IPv6 addresses in its /64: they are one source."""
    client = limited_app.test_client()
    for n in range(3):
        ip = f"2001:db8:1:2::{n + 1:x}"
        assert log_in(client, password="wrong password!", environ_base={"REMOTE_ADDR": ip}).status_code == 401
    assert log_in(client, environ_base={"REMOTE_ADDR": "2001:db8:1:2::ffff"}).status_code == 429
    assert log_in(client, environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"}).status_code == 303


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


def test_parallel_guesses_past_the_limit_never_reach_the_password_check(make_app, monkeypatch):
    """Thirty wrong logins at once from one address, limit 5: at most 5 password checks, the rest 429.

    The check is slowed down (a real scrypt takes ~0.1 s) so that every
    request is in flight at the same time; a limit tested before the check
    and counted after it let them all through.
    """
    from mailer.admin import accounts

    app = make_app(RATELIMIT_ENABLED=True, ADMIN_LOGIN_LIMIT="5/minute", ADMIN_ACCOUNT_LOGIN_LIMIT="5/minute")
    with session_scope(app) as s:
        add_admin(s)
    checks, lock, started = [], threading.Lock(), threading.Barrier(30)
    real_check = accounts.check_password_hash  # type: ignore[attr-defined]

    def counted_check(stored: str, password: str) -> bool:
        with lock:
            checks.append(password)
        time.sleep(0.2)  # the work the limit guards, long enough for the others to arrive
        return real_check(stored, password)

    monkeypatch.setattr(accounts, "check_password_hash", counted_check)

    def guess(n: int) -> int:
        client = app.test_client()
        started.wait(10)
        return int(log_in(client, password=f"wrong guess {n}").status_code)

    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(guess, range(30)))
    assert len(checks) <= 5, len(checks)
    assert answers.count(401) == len(checks) and answers.count(429) == 30 - len(checks)
    assert checks  # the first ones were checked
