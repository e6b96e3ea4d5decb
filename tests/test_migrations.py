"""The migrations build the schema from empty, and agree with the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text, update
from sqlalchemy.orm import Session

from mailer import migrate
from mailer.db import make_engine
from mailer.delivery.record import SKIPPED_REPLY
from mailer.models import Base, Delivery, DeliveryStatus
from tests.delivery.factory import make_digest


def _empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.config.getoption("--db") == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        return url
    return f"sqlite:///{tmp_path / 'migrated.sqlite3'}"


@pytest.fixture
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (on PostgreSQL, the shared one is rebuilt as the other tests expect it after)."""
    url = _empty_database_url(request, tmp_path)
    yield url
    if request.config.getoption("--db") == "postgresql":
        # Leave the shared test database as the other tests expect it.
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        Base.metadata.create_all(engine)
        engine.dispose()


@pytest.fixture
def migrated_url(empty_url: str) -> str:
    """A database built by the migrations alone (the suite's other tests use create_all)."""
    migrate.upgrade(empty_url)
    return empty_url


def test_0013_gives_skipped_deliveries_their_own_state(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0011")  # the schema of the models but 0013's data
    engine = make_engine(empty_url)
    with Session(engine) as session:
        made = make_digest(session, 3)
        left, failed, _pending = made.readers
        session.execute(update(Delivery).where(Delivery.subscriber_id == left)
                        .values(status=DeliveryStatus.FAILED, last_reply=SKIPPED_REPLY))
        session.execute(update(Delivery).where(Delivery.subscriber_id == failed)
                        .values(status=DeliveryStatus.FAILED, last_reply="550 5.1.1 no such user"))
        session.commit()
    migrate.upgrade(empty_url)
    with Session(engine) as session:
        found = dict(session.execute(select(Delivery.subscriber_id, Delivery.status)).tuples().all())
    engine.dispose()
    assert [found[r] for r in made.readers] == [DeliveryStatus.SKIPPED, DeliveryStatus.FAILED,
                                                DeliveryStatus.PENDING]


def test_migrations_create_every_table(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables


def test_models_and_migrations_agree(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == [], "run `flask --app wsgi db migrate -m ...`: the models changed"


def test_upgrade_is_idempotent(migrated_url: str) -> None:
    migrate.upgrade(migrated_url)  # a second run changes nothing and does not fail
