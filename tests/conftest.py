"""Fixtures: the app on a fresh database, a real SMTP server, a feed server.

The database is SQLite by default; ``pytest --db postgresql`` runs the same
suite on PostgreSQL (a database of its own, created for the run and dropped
after; ``MAILER_TEST_DATABASE_URL`` points it elsewhere). Where no PostgreSQL
answers, those runs are skipped with a clear reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from mailer import create_app
from mailer.background import Worker
from mailer.db import get_engine, get_sessionmaker
from mailer.models import Base
from tests.http_server import FeedServer
from tests.smtp_sink import SmtpSink

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOOPBACK = ["127.0.0.0/8", "::1/128"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=("sqlite", "postgresql"), default="sqlite",
                     help="database the suite runs on")


def pytest_configure(config: pytest.Config) -> None:
    """Keep the developer's MAILER_* variables and instance/config.py out of the tests."""
    kept = ("MAILER_TEST_DATABASE_URL", "MAILER_SCREENSHOTS_DIR")
    for name in [n for n in os.environ if n.startswith("MAILER_") and n not in kept]:
        del os.environ[name]
    import tempfile

    os.environ["MAILER_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="mailer-test-instance-")


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {config.getoption('--db')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip postgresql_only tests on SQLite, and sqlite_only ones on PostgreSQL."""
    database = config.getoption("--db")
    for item in items:
        if item.get_closest_marker("postgresql_only") and database != "postgresql":
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: run with --db postgresql"))
        if item.get_closest_marker("sqlite_only") and database != "sqlite":
            item.add_marker(pytest.mark.skip(reason="about SQLite itself: runs with --db sqlite"))


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL database of this run's own, dropped at the end."""
    given = os.environ.get("MAILER_TEST_DATABASE_URL")
    if given:
        yield given
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"mailer_test_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        admin.dispose()
        pytest.skip(f"PostgreSQL not available at {PG_ADMIN_URL}: {type(exc).__name__}")
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _postgres_schema(postgres_url: str) -> str:
    engine = create_engine(postgres_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    engine.dispose()
    return postgres_url


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database with the schema, for one test."""
    if request.config.getoption("--db") == "postgresql":
        url: str = request.getfixturevalue("_postgres_schema")
        engine = create_engine(url)
        with engine.begin() as conn:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return url
    url = f"sqlite:///{tmp_path / 'test.sqlite3'}"
    from mailer.db import make_engine

    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    """A real aiosmtpd server on a free loopback port (reset for every test)."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def _feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    yield server
    server.stop()


@pytest.fixture
def feed_server(_feed_server: FeedServer) -> FeedServer:
    """A real local HTTP server; ``feed_server.add(path, body)`` returns the URL."""
    _feed_server.reset()
    return _feed_server


@pytest.fixture
def make_app(database_url: str, smtp_server: SmtpSink, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build an app on the test database, with config overrides (e.g. CSRF on)."""
    smtp_server.reset()
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app({
            "ENV": "testing",
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret",
            "SMTP_URL": smtp_server.url,
            "FEEDS": [],
            # Tests read English msgids; the Italian default has tests of its own.
            "LOCALE": "en",
            "BASE_URL": "http://newsletter.test",
            "FROM": "Notizie Tech <newsletter@example.it>",
            "CAPTURE_MAILDIR": str(tmp_path / "captured"),
            # The test servers (feeds...) listen on loopback, which feeds may not
            # reach by default; the guard's own tests pass FEED_ALLOW_NETWORKS=[].
            "FEED_ALLOW_NETWORKS": LOOPBACK,
            # What config/testing.py no longer relaxes (MAILER_ENV=testing relaxes nothing):
            # tests post forms without a CSRF token and past the rate limits unless they
            # are about them, and read the captured-mail viewer.
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            "SHOW_CAPTURED_MAIL": True,
            **overrides,
        })
        # Its test client waits for the signup worker thread after each request (SettlingClient).
        app.test_client_class = SettlingClient
        apps.append(app)
        return app

    yield make
    for app in apps:
        # The threads must not outlive their app: on PostgreSQL they would
        # otherwise apply or send the next test's rows, or log about a dropped database.
        for name in ("mailer.signups", "mailer.outbox"):
            worker = app.extensions.get(name)
            if worker is not None:
                worker.stop()
        get_engine(app).dispose()


@pytest.fixture(autouse=True)
def _stop_every_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Stop, at the end of each test, every background worker it made (its app's or its own).

    Patches ``mailer.background.Worker.__init__`` for every test (autouse), to
    record each worker made; the workers themselves run unchanged.

    On PostgreSQL every test shares one database: a worker left running
    (one a test built itself, without ``stop``) would find the next test's
    rows, keep itself busy with them and send or apply them with its old
    app's settings.
    """
    made: list[Worker] = []
    real_init = Worker.__init__

    def recording_init(self: Worker, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Worker, "__init__", recording_init)
    yield
    for worker in made:
        worker.stop()


class SettlingClient(FlaskClient):
    """The test client, waiting after each request for the signups it queued to be applied.

    A signup request only queues; the app's signup worker thread applies the
    queue right after (``mailer.subscriptions.worker``). Tests read the
    outcome (the subscriber, its mail) as a reader would a moment later, so
    the client waits for that thread, as a browser's next click would.
    Tests of the queue itself stop the thread or call ``apply_queue``.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        worker = self.application.extensions.get("mailer.signups")
        if worker is not None:
            assert worker.wait_idle(10), "the signup worker did not apply the queue within 10 s"
        return response


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app on a fresh database, sending to the test SMTP server."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """The app's test client: a ``SettlingClient``, which waits for the signup worker thread."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """A session on the test database (commit what a test sets up)."""
    with get_sessionmaker(app)() as session:
        yield session
