"""deliveries.complaint: a complaint report (ARF) about that copy; subscribers may be "complained"

The subscriber status is a plain string column (no CHECK constraint, see
models._enum), so the new "complained" status needs no schema change.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 19:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('complaint', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    # A complained reader would become a status the old code does not know: make it "unsubscribed".
    op.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE status = 'complained'")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('complaint')
