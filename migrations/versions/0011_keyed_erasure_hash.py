"""Erased readers keep a keyed hash (HMAC-SHA256), not the plain sha256 of the address

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 20:00:00

Rows erased before this kept ``sha256(address)``, which anyone with a list of
addresses can match. The keyed hash is computed from that plain hash
(``addresses.erased_hash``), so every such row is converted, and the consent
events filed under it move with it: the row still suppresses re-imports and
re-signups, and its history stays linked to it. Only the key is needed: the
app's SECRET_KEY under ``flask db upgrade``, else the configuration that the
environment gives (as the app would load it), read only when there is a
row to convert. Downgrade cannot undo an HMAC: it leaves the rows as they are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

subscribers = sa.table('subscribers', sa.column('id', sa.Integer), sa.column('email', sa.String),
                       sa.column('email_hash', sa.String), sa.column('status', sa.String))
events = sa.table('consent_events', sa.column('email_hash', sa.String))


def _secret_key() -> str:
    from flask import current_app, has_app_context

    if has_app_context():
        return str(current_app.config["SECRET_KEY"])
    from mailer.config import load_config

    instance = os.environ.get("MAILER_INSTANCE_PATH") or str(Path.cwd() / "instance")
    return str(load_config(os.environ, None, instance)["SECRET_KEY"])


def upgrade() -> None:
    from mailer.subscriptions.addresses import erased_hash

    conn = op.get_bind()
    rows = conn.execute(sa.select(subscribers.c.id, subscribers.c.email_hash)
                        .where(subscribers.c.status == 'erased', subscribers.c.email.is_(None))).all()
    if not rows:
        return
    key = _secret_key()
    for row_id, plain in rows:
        keyed = erased_hash(plain, key)
        conn.execute(sa.update(subscribers).where(subscribers.c.id == row_id).values(email_hash=keyed))
        conn.execute(sa.update(events).where(events.c.email_hash == plain).values(email_hash=keyed))


def downgrade() -> None:
    pass
