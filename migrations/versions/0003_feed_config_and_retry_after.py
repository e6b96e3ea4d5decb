"""feeds: left_config_at (its URL left MAILER_FEEDS), retry_after_at (Retry-After)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('left_config_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('retry_after_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('retry_after_at')
        batch_op.drop_column('left_config_at')
