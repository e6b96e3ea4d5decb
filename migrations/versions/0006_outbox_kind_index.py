"""outbound_mails: an index on (kind, created_at) for the signups' hourly cap

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_outbound_mails_kind_created', 'outbound_mails', ['kind', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbound_mails_kind_created', table_name='outbound_mails')
