"""offer_early_status: delivery callbacks that arrive before the sid is saved

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 18:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('offer_early_status',
    sa.Column('provider_sid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('provider_sid')
    )
    with op.batch_alter_table('offer_early_status', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_offer_early_status_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('offer_early_status', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_offer_early_status_received_at'))

    op.drop_table('offer_early_status')
