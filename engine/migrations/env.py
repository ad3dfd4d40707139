"""Alembic environment: runs on the connection init_db hands over (SQLite or PostgreSQL)."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import engine.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from engine.store.db import ALEMBIC_VERSION_TABLE  # current_revision reads it without alembic

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        connectable = create_engine(config.get_main_option("sqlalchemy.url"), hide_parameters=True)
        with connectable.begin() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        version_table=ALEMBIC_VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
