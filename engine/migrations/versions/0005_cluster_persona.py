"""cluster_persona: each cluster profile's persona and the R/F/M levels behind it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 14:45:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("persona", 48), ("r_level", 8), ("f_level", 8), ("m_level", 8))


def upgrade() -> None:
    # Runs stored before personas keep '' (no persona), never a guessed one.
    with op.batch_alter_table('cluster_profile', schema=None) as batch_op:
        for name, length in COLUMNS:
            batch_op.add_column(sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length),
                                          nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('cluster_profile', schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
