"""Security headers: a strict CSP everywhere, nosniff, Referrer-Policy, no framing, HSTS in production."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from mailer.db import session_scope
from tests.admin import seed
from tests.admin.conftest import add_admin, log_in

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "pages"
# Pages that send a policy of their own that allows inline styles (a mail's HTML).
OWN_POLICY = {"archive/show.html", "admin/no_preview.html"}


def directives(response: Any) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in policy.split(";")) if part}


def test_a_public_page_gets_a_strict_policy(client: FlaskClient) -> None:
    answer = client.get("/")
    csp = directives(answer)
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'" and csp["frame-ancestors"] == "'none'"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in answer.headers  # not production


@pytest.mark.parametrize("path", ["/confirm/not-a-token", "/unsubscribe/not-a-token", "/preferences/not-a-token"])
def test_pages_with_a_token_in_their_address_send_no_referrer(client: FlaskClient, path: str) -> None:
    """Even the error page of a bad token: its address still holds what was typed."""
    answer = client.get(path)
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert directives(answer)["frame-ancestors"] == "'none'"


def test_errors_json_and_static_files_get_the_headers_too(client: FlaskClient) -> None:
    for answer in (client.get("/no-such-page"), client.post("/api/subscribe", json={}),
                   client.get("/static/embed.js")):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" in answer.headers


def test_admin_pages_are_never_framed(app: Flask, client: FlaskClient, session: Session) -> None:
    add_admin(session)
    session.commit()
    for answer in (client.get("/admin/login"), (log_in(client), client.get("/admin/"))[1]):
        assert directives(answer)["frame-ancestors"] == "'none'" and answer.headers["X-Frame-Options"] == "DENY"
        assert directives(answer)["script-src"] == "'self'"
        assert answer.headers["Referrer-Policy"] == "same-origin"
    # The digest preview is framed by the admin itself, and sandboxed.
    preview = client.get("/admin/digests/preview")
    assert preview.headers["X-Frame-Options"] == "SAMEORIGIN" and "sandbox" in preview.headers[
        "Content-Security-Policy"]


def test_the_archive_copy_keeps_its_inline_styles_and_no_script(app: Flask, session: Session) -> None:
    made = seed.digest(session, "2026-W09")
    made.archive_html = "<html><body style='margin:0'><p style='color:red'>Ciao</p></body></html>"
    session.commit()
    answer = app.test_client().get(f"/archive/{made.id}")
    csp = directives(answer)
    assert csp["style-src"] == "'self' 'unsafe-inline'" and csp["img-src"] == "* data:"
    assert csp["script-src"] == "'self'" and csp["frame-ancestors"] == "'none'"


def test_hsts_in_production_over_https(make_app: Callable[..., Flask]) -> None:
    production = {"ENV": "production", "SECRET_KEY": "a production secret", "SMTP_URL": "smtp://127.0.0.1:25"}
    https = make_app(**production, BASE_URL="https://news.example.it").test_client().get("/healthz")
    assert https.headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = make_app(**production, BASE_URL="http://127.0.0.1:5000").test_client().get("/healthz")
    assert "Strict-Transport-Security" not in plain.headers
    development = make_app(BASE_URL="https://news.example.it").test_client().get("/healthz")
    assert "Strict-Transport-Security" not in development.headers


@pytest.mark.parametrize("template", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html")))
def test_no_template_needs_inline_script_or_style(template: str) -> None:
    """What the policy refuses: a <script> without src, an on...= handler, a style attribute or element."""
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
    if template not in OWN_POLICY:
        assert not re.search(r"<[^<>]*\sstyle\s*=|<style", text), "inline style"


def test_a_seeded_archive_digest(app: Flask) -> None:
    """The fixture the browser test below uses: a digest whose copy has a <style> and style attributes."""
    with session_scope(app) as session:
        made = archive_digest(session)
    assert app.test_client().get(f"/archive/{made}").status_code == 200


def archive_digest(session: Session) -> int:
    made = seed.digest(session, "2026-W10")
    made.archive_html = ("<html><head><style>.d-title { color: rgb(1, 2, 3); }</style></head>"
                         "<body style='margin: 0'><h1 class='d-title' style='font-size: 31px'>Ciao</h1></body></html>")
    session.flush()
    return made.id


RECORDER = ("window.__violations = [];"
            "document.addEventListener('securitypolicyviolation',"
            " (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));")


@pytest.mark.browser
def test_the_pages_run_under_their_policy_in_chromium(app: Flask, session: Session) -> None:
    """Real pages in chromium: nothing they need is refused, and the admin's select still sends its form."""
    from tests.admin.live import browser_missing, chromium, live_server

    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    add_admin(session)
    made = archive_digest(session)
    session.commit()
    with live_server(app) as base, chromium() as browser:
        # Recorded by a script the browser itself adds to each page (CSP does not apply to it).
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER})

        def violations() -> list[str]:
            found: list[str] = browser.execute_script("return window.__violations || []")
            return found

        browser.get(f"{base}/")
        assert browser.find_element(By.ID, "email") and violations() == []
        browser.get(f"{base}/archive/{made}")
        title = browser.find_element(By.CSS_SELECTOR, ".d-title")
        assert title.value_of_css_property("color") == "rgba(1, 2, 3, 1)"  # the copy's <style>
        assert title.value_of_css_property("font-size") == "31px"  # and its style attributes
        assert violations() == []
        browser.get(f"{base}/admin/login")
        browser.find_element(By.ID, "email").send_keys("admin@example.it")
        browser.find_element(By.ID, "password").send_keys("correct horse battery")
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(browser, 15).until(lambda driver: driver.current_url.rstrip("/").endswith("/admin"))
        browser.get(f"{base}/admin/digests/")
        Select(browser.find_element(By.ID, "language")).select_by_value("it")  # admin.js sends the form
        WebDriverWait(browser, 15).until(lambda driver: "language=it" in driver.current_url)
        assert violations() == []
        # The recorder does see what the policy refuses: an inline handler.
        browser.execute_script("document.body.insertAdjacentHTML('beforeend', "
                               "'<img src=\"data:,\" onerror=\"window.ran = 1\">')")
        WebDriverWait(browser, 5).until(lambda driver: violations())
        assert browser.execute_script("return window.ran") is None
