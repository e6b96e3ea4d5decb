"""deliveries.status 'skipped': a reader who left before their turn, no longer 'failed' plus a sentence

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-03 20:00:00

The status column holds plain strings (no native ENUM, no CHECK), so the new
state needs no DDL: only the rows written before it move over.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the sender wrote in last_reply for a skipped delivery before this state existed.
SKIPPED_REPLY = "not sent: the reader is no longer subscribed"


def upgrade() -> None:
    op.execute(sa.text("UPDATE deliveries SET status = 'skipped' WHERE status = 'failed' AND last_reply = :reply")
               .bindparams(reply=SKIPPED_REPLY))


def downgrade() -> None:
    op.execute(sa.text("UPDATE deliveries SET status = 'failed', last_reply = :reply WHERE status = 'skipped'")
               .bindparams(reply=SKIPPED_REPLY))
