"""Schema migrations with plain Alembic, driven from the app's database URL."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from mailer import ROOT


def alembic_config(database_url: str) -> Config:
    """An Alembic config for ``migrations/`` on ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    # ConfigParser interpolation would choke on a % in a password.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Create or migrate the schema up to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def revision(database_url: str, message: str) -> None:
    """Write a new migration from the difference between models and database."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
