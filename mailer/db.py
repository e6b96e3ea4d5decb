"""The engine and sessions of one app.

As in flask-sqlalchemy-lite: the engine and ``sessionmaker`` live in
``app.extensions["mailer.db"]``; a request's session lives on ``g`` and closes
at teardown; jobs and commands open their own with ``session_scope()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

EXTENSION = "mailer.db"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets the pragmas that make it a real default."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)
        _create_private(engine.url.database)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _create_private(path: str | None) -> None:
    """Create a new SQLite file readable by its owner only (it holds every address).

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return  # no such folder, read-only...: SQLite's own error says it better


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # busy_timeout must come before journal_mode: switching to WAL takes a
    # write lock, and two gunicorn workers starting at once otherwise die on
    # "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def init_app(app: Flask) -> None:
    """Create the app's engine and session factory; close sessions at teardown."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions[EXTENSION] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_sessionmaker(app: Flask | None = None) -> sessionmaker[Session]:
    """The app's session factory."""
    factory: sessionmaker[Session] = (app or current_app).extensions[EXTENSION]
    return factory


def get_engine(app: Flask | None = None) -> Engine:
    """The app's engine."""
    engine = get_sessionmaker(app).kw["bind"]
    assert isinstance(engine, Engine)
    return engine


def get_session() -> Session:
    """The session of the current request (or app context), opened on first use."""
    if "db_session" not in g:
        g.db_session = get_sessionmaker()()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


@contextmanager
def session_scope(app: Flask | None = None) -> Iterator[Session]:
    """A session for a job or command: committed on success, rolled back on error."""
    with get_sessionmaker(app)() as session, session.begin():
        yield session
