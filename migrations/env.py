"""Alembic environment: plain Alembic on ``mailer.models.Base.metadata``.

The URL comes from the ``sqlalchemy.url`` that ``flask --app wsgi db ...``
sets, or, for a bare ``alembic`` call, from the app's configuration.
"""

from __future__ import annotations

from alembic import context

from mailer.db import make_engine
from mailer.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from mailer import create_app

    return str(create_app().config["DATABASE_URL"])


def run_migrations_offline() -> None:
    """Emit SQL to standard output instead of running it."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live connection."""
    url = _url()
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite alters tables by copying them: batch mode does that.
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
