"""``GET /healthz``: 200 while the database answers, 503 when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mailer import create_app
from mailer.db import get_engine


def test_healthz_is_200_with_the_database_up(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "signup_queue": 0}


def test_healthz_counts_the_signups_waiting(app: Flask) -> None:
    app.extensions.pop("mailer.signups")  # no worker: the request's row stays queued
    client = app.test_client()
    assert client.post("/api/subscribe", json={"email": "waiting@example.it", "consent": True}).status_code == 202
    assert client.get("/healthz").get_json()["signup_queue"] == 1


@pytest.mark.parametrize("url", [
    # A SQLite file in a directory that does not exist cannot be opened.
    "sqlite:///{tmp}/no-such-directory/mailer.sqlite3",
    # Nothing listens on port 1: connection refused at once. The password must not leak.
    "postgresql+psycopg://mailer:s3cret-pw@127.0.0.1:1/mailer",
])
def test_healthz_is_503_with_the_database_down(app: Flask, tmp_path: Path, url: str) -> None:
    down = create_app({**app.config, "DATABASE_URL": url.format(tmp=tmp_path)})
    try:
        response = down.test_client().get("/healthz")
    finally:
        get_engine(down).dispose()
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert body["database"] == "down"
    assert "s3cret" not in response.get_data(as_text=True)


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds every reader's address: not for the machine's other users (nor its WAL files)."""
    from sqlalchemy import text

    from mailer.db import make_engine

    path = tmp_path / "new.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    engine.dispose()
    assert modes["new.sqlite3"] == 0o600
    assert all(mode == 0o600 for mode in modes.values()), modes
