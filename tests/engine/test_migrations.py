"""The Alembic migrations build the same schema on SQLite and PostgreSQL, idempotently."""

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import engine.models  # noqa: F401
from engine.store import get_engine, init_db
from engine.store.db import StoreError, current_revision, require_schema
from tests.conftest import run_segmint


def test_migrations_create_every_model_table_twice_safely(db_url):
    db = get_engine(db_url)
    first = init_db(engine=db)
    second = init_db(engine=db)
    assert first == second == current_revision(engine=db)
    tables = set(inspect(db).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    columns = {c["name"] for c in inspect(db).get_columns("transaction_line")}
    assert {"line_hash", "invoice", "stock_code", "quantity", "unit_price", "ts"} <= columns
    db.dispose()


def test_current_revision_agrees_with_alembic(db_url):
    """Read with one SELECT (the listing commands never import alembic): no table, then the
    head after init-db, exactly what Alembic's own MigrationContext says; a version table with
    two rows (branches Segmint never makes) is refused in one line."""
    from alembic.runtime.migration import MigrationContext

    db = get_engine(db_url)
    if db.url.get_backend_name() == "sqlite":
        Path(str(db.url.database)).touch()  # only init-db creates the file
    with db.connect() as connection:
        connection.execute(text("CREATE TABLE unrelated (x INTEGER)"))
        connection.commit()
    assert current_revision(engine=db) is None
    with pytest.raises(StoreError, match="has no Segmint schema: run `segmint init-db` first"):
        require_schema(engine=db)
    head = init_db(engine=db)
    with db.connect() as connection:
        assert current_revision(engine=db) == head == \
            MigrationContext.configure(connection).get_current_revision()
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES ('zz99')"))
        connection.commit()
    with pytest.raises(StoreError, match=r"is at several migrations \(.*zz99\)"):
        require_schema(engine=db)
    with db.connect() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
        connection.commit()
        assert MigrationContext.configure(connection).get_current_revision() is None
    assert current_revision(engine=db) is None  # an emptied version table: no schema, as Alembic
    db.dispose()


def test_init_db_command_is_idempotent(tmp_path):
    from alembic.script import ScriptDirectory

    from engine.store.db import _alembic_config

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head
    env = {"SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    for _ in range(2):
        result = run_segmint("init-db", cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        assert f"at revision {head}" in result.stdout


def test_unreachable_database_is_one_line(tmp_path):
    env = {"SEGMINT_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    result = run_segmint("init-db", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "unreachable" in error_lines[0]


def test_bad_config_is_one_line(tmp_path):
    (tmp_path / "config.toml").write_text("[clustering]\nk_min = 5\nk_max = 2\n")
    result = run_segmint("init-db", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error:")
    assert "clustering" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_every_command(tmp_path):
    result = run_segmint("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "init-db" in result.stdout
