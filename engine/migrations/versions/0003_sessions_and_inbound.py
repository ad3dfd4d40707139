"""dashboard_user.session_version / revoked, inbound_message: sessions that end, replays refused

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 14:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('dashboard_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('revoked', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.create_table('inbound_message',
    sa.Column('message_sid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('keyword', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('message_sid')
    )
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_message_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_message_received_at'))
    op.drop_table('inbound_message')
    with op.batch_alter_table('dashboard_user', schema=None) as batch_op:
        batch_op.drop_column('revoked')
        batch_op.drop_column('session_version')
