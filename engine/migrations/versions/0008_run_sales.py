"""run_month, run_product and run_group_product: a run's monthly and product figures (engine.sales_figures), made
by the backend that holds the lines; runs published before have none and the dashboard computes
their figures as before

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 02:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('run_month',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('revenue', sa.Float(), nullable=False),
    sa.Column('orders', sa.Integer(), nullable=False),
    sa.Column('active_customers', sa.Integer(), nullable=False),
    sa.Column('new_customers', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['segmentation_run.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'month')
    )
    op.create_table('run_product',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('stock_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('revenue', sa.Float(), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=True),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['segmentation_run.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'stock_code')
    )
    op.create_table('run_group_product',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('grouping', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('group', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('stock_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('revenue', sa.Float(), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['segmentation_run.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'grouping', 'group', 'stock_code')
    )


def downgrade() -> None:
    op.drop_table('run_group_product')
    op.drop_table('run_product')
    op.drop_table('run_month')
