"""Error answers: pages in the site's layout and language, JSON under /api/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from mailer import create_app
from mailer.db import get_engine


def test_a_missing_page_is_a_404_in_the_readers_language(client: FlaskClient) -> None:
    italian = client.get("/no-such-page", headers={"Accept-Language": "it"})
    assert italian.status_code == 404
    page = italian.get_data(as_text=True)
    assert '<html lang="it"' in page and "Pagina non trovata" in page and 'class="site-footer"' in page
    english = client.get("/no-such-page?lang=en")
    assert english.status_code == 404 and "Page not found" in english.get_data(as_text=True)


def test_the_api_answers_json_even_for_a_wrong_method(client: FlaskClient) -> None:
    answer = client.get("/api/subscribe")
    assert answer.status_code == 405 and answer.is_json
    assert answer.get_json()["error"] == "method_not_allowed" and "POST" in answer.headers["Allow"]


def test_an_id_too_large_for_the_database_is_a_404(client: FlaskClient) -> None:
    assert client.get("/archive/99999999999999999999").status_code == 404
    assert client.get("/archive/9223372036854775808").status_code == 404


def test_the_form_address_opened_with_get_leads_back_to_the_form(client: FlaskClient) -> None:
    """The language links of the form's error page point at /subscribe?lang=...: no bare 405."""
    answer = client.get("/subscribe?lang=en")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/?lang=en")
    assert client.get("/subscribe").headers["Location"].endswith("/")


@pytest.mark.parametrize("url", [
    "sqlite:///{tmp}/missing/dir/db.sqlite3",
    "postgresql+psycopg://postgres@127.0.0.1:1/nodb",  # nothing listens: connection refused
])
def test_the_api_with_the_database_down_is_a_json_503(make_app: Callable[..., Flask], tmp_path: Path, url: str) -> None:
    """The per-IP limit counts in the database first: its raw connection's failure is a 503 too."""
    app = make_app()
    down = create_app({**app.config, "DATABASE_URL": url.format(tmp=tmp_path), "RATELIMIT_ENABLED": True})
    try:
        answer = down.test_client().post("/api/subscribe", json={"email": "mario@example.it", "consent": True})
    finally:
        get_engine(down).dispose()
    assert answer.status_code == 503 and answer.is_json and answer.headers["Retry-After"]
    assert answer.get_json()["error"] == "service_unavailable"


def test_privacy_links_open_in_the_pages_language(client: FlaskClient) -> None:
    page = client.get("/?lang=en", headers={"Accept-Language": "it"}).get_data(as_text=True)
    assert 'href="/privacy?lang=en"' in page  # the consent box and the footer
    assert "Privacy notice" in client.get("/privacy?lang=en", headers={"Accept-Language": "it"}).get_data(
        as_text=True)


@pytest.mark.sqlite_only  # SQLite says OperationalError for a missing column; the test also alters the schema
def test_a_schema_not_migrated_is_a_logged_500_not_a_busy_503(
        make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    """New code before `db upgrade`: the log must say which column is missing, not "unavailable"."""
    app = make_app()
    with get_engine(app).begin() as conn:
        conn.execute(text("ALTER TABLE digests DROP COLUMN archive_translations"))
    answer = app.test_client().get("/archive/")
    assert answer.status_code == 500 and "Retry-After" not in answer.headers
    logged = [record for record in caplog.records if record.name == "mailer.errors"]
    assert logged and logged[-1].exc_info is not None and "archive_translations" in str(logged[-1].exc_info[1])


@pytest.mark.parametrize("page", ["99999999999999999999999", "9223372036854775807", "-1", "0", "abc", "1.5", "²",
                                  "2"])
def test_a_page_number_that_is_not_a_page_is_a_404(client: FlaskClient, page: str) -> None:
    """``/archive/?page=<huge>`` was a 500 (an OFFSET past BIGINT); any page that does not exist is a 404."""
    answer = client.get("/archive/", query_string={"page": page})
    assert answer.status_code == 404 and "Page not found" in answer.get_data(as_text=True)


def test_the_first_page_of_an_empty_archive_answers(client: FlaskClient) -> None:
    assert client.get("/archive/").status_code == 200
    assert client.get("/archive/?page=1").status_code == 200


@pytest.mark.parametrize("url", ["/admin/readers/", "/admin/digests/", "/dev/mail/"])
@pytest.mark.parametrize("page", ["99999999999999999999999", "abc", "0", "5"])
def test_admin_pages_out_of_range_are_a_404(make_app: Callable[..., Flask], url: str, page: str) -> None:
    from mailer.db import session_scope
    from tests.admin.conftest import add_admin, log_in

    app = make_app()
    with session_scope(app) as session:
        add_admin(session)
    client = app.test_client()
    assert log_in(client).status_code == 303
    assert client.get(url).status_code == 200
    assert client.get(url, query_string={"page": page}).status_code == 404
