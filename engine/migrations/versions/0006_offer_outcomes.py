"""offer_message: the pass that decided a row and its group (treatment or holdout)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows written before holdouts existed were all sent: they are the treatment group.
    with op.batch_alter_table('offer_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pass_id', sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column('assigned_group',
                                      sqlmodel.sql.sqltypes.AutoString(length=16),
                                      server_default='treatment', nullable=False))
        batch_op.create_index(batch_op.f('ix_offer_message_pass_id'), ['pass_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('offer_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_offer_message_pass_id'))
        batch_op.drop_column('assigned_group')
        batch_op.drop_column('pass_id')
