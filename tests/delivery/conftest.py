"""Fixtures of the delivery tests: quick retries, PostgreSQL-only marks."""

from __future__ import annotations

import pytest
from flask import Flask


@pytest.fixture(autouse=True)
def _database_marks(request: pytest.FixtureRequest) -> None:
    """Skip postgresql_only tests on SQLite and sqlite_only ones on PostgreSQL."""
    database = request.config.getoption("--db")
    if request.node.get_closest_marker("postgresql_only") and database != "postgresql":
        pytest.skip("needs PostgreSQL: run with --db postgresql")
    if request.node.get_closest_marker("sqlite_only") and database != "sqlite":
        pytest.skip("about SQLite itself")


@pytest.fixture
def app(app: Flask) -> Flask:
    """The shared app, with retries fast enough for a test."""
    app.config.update(
        SMTP_CONNECTIONS=2,
        DELIVERY_BACKOFF_SECONDS=0.05,
        DELIVERY_RETRY_WITHIN_RUN_SECONDS=0,
        DELIVERY_BATCH_SIZE=50,
        SMTP_TIMEOUT=10,
    )
    return app
