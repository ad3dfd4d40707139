"""invoice_day and summary_setting: the lines summed per day and invoice for the dashboard's
windows, built from the lines already stored (with the default non-product codes; a load with
other codes rebuilds it)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from engine.settings import IngestSettings
    from engine.store.invoice_days import rebuild

    op.create_table('invoice_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('invoice', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('is_return', sa.Boolean(), nullable=False),
    sa.Column('is_product', sa.Boolean(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.Column('net', sa.Float(), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'invoice', 'customer_id', 'is_return', 'is_product'),
    sqlite_with_rowid=False,
    )
    op.create_table('summary_setting',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    rebuild(op.get_bind(), codes=IngestSettings().non_product_codes)
    op.create_index('ix_invoice_day_customer', 'invoice_day', ['customer_id', 'day'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_invoice_day_customer', table_name='invoice_day')
    op.drop_table('summary_setting')
    op.drop_table('invoice_day')
