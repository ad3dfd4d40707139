"""customer_clv and clv_fit: each run's predicted customer value and fitted CLV models

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 14:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('customer_clv',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('frequency', sa.Integer(), nullable=False),
    sa.Column('recency', sa.Float(), nullable=False),
    sa.Column('T', sa.Float(), nullable=False),
    sa.Column('p_alive', sa.Float(), nullable=False),
    sa.Column('expected_purchases_90d', sa.Float(), nullable=False),
    sa.Column('expected_purchases_365d', sa.Float(), nullable=False),
    sa.Column('expected_order_value', sa.Float(), nullable=False),
    sa.Column('clv_365d', sa.Float(), nullable=False),
    sa.Column('churn_risk', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('history', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('order_value_source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['segmentation_run.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'customer_id')
    )
    op.create_table('clv_fit',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('time_unit', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['segmentation_run.id'], ),
    sa.PrimaryKeyConstraint('run_id')
    )


def downgrade() -> None:
    op.drop_table('clv_fit')
    op.drop_table('customer_clv')
