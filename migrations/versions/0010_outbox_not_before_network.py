"""outbound_mails: not_before (a confirmation held by the hourly cap) and network (its share)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 19:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbound_mails', schema=None) as batch_op:
        batch_op.add_column(sa.Column('not_before', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('network', sa.String(length=16), nullable=True))
    # Every mail so far could leave when it was made.
    op.execute("UPDATE outbound_mails SET not_before = created_at")
    with op.batch_alter_table('outbound_mails', schema=None) as batch_op:
        batch_op.alter_column('not_before', existing_type=sa.DateTime(), nullable=False)
        batch_op.drop_index('ix_outbound_mails_kind_created')
        batch_op.create_index('ix_outbound_mails_kind_not_before', ['kind', 'not_before'], unique=False)
        batch_op.create_index('ix_outbound_mails_network_created', ['network', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbound_mails', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_mails_network_created')
        batch_op.drop_index('ix_outbound_mails_kind_not_before')
        batch_op.create_index('ix_outbound_mails_kind_created', ['kind', 'created_at'], unique=False)
        batch_op.drop_column('network')
        batch_op.drop_column('not_before')
