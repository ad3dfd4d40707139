"""Shared fixtures: real SQLite files and a private schema on the real PostgreSQL server."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlmodel import Session

from engine.settings import Settings, load_settings
from engine.store import get_engine, init_db
from engine.store.tables import CUSTOMERS, LINES, PRODUCTS, SOURCE_FILES

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = REPO.parent / "shared" / "data" / "online_retail.csv.gz"
PG_ADMIN_URL = os.environ.get("SEGMINT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# One pytensor compile cache for every test and child process (the CLV fit compiles its models
# once per machine; a fresh folder per test would pay that for each test).
PYTENSOR_CACHE = REPO / "var" / "cache" / "pytensor"
os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={PYTENSOR_CACHE}")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """An ORM session for tests that build rows from the models; commits at the end of the
    block, rolls back on any error. (The store itself writes with SQLAlchemy Core.)"""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def count_rows(engine: Engine) -> dict[str, int]:
    """Rows per ingest table (source_file, transaction_line, product, customer)."""
    tables = {"source_file": SOURCE_FILES, "transaction_line": LINES, "product": PRODUCTS,
              "customer": CUSTOMERS}
    with engine.connect() as connection:
        return {name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in tables.items()}


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.exists():
        pytest.skip(f"{REAL_DATA} is absent (../shared is not beside the checkout)")
    return REAL_DATA


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'segmint.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema per test on the shared server, so concurrent runs cannot collide."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not usable: {exc}")
    yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(name)


def dead_pid() -> int:
    """The id of a process that has exited (a child started and waited for)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def make_settings(tmp_path: Path, db_url: str, config_text: str = "") -> Settings:
    """Settings from a config.toml written into tmp_path (relative paths resolve there)."""
    config = tmp_path / "config.toml"
    config.write_text(config_text)
    return load_settings(config, environ={"SEGMINT_DATABASE_URL": db_url})


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def db(settings: Settings):  # type: ignore[no-untyped-def]
    """A migrated database (SQLite and PostgreSQL) for the test."""
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    yield engine
    engine.dispose()


def run_segmint(*args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real console script in a child process (exit status, stdout, stderr)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "segmint", *args], cwd=cwd, env=full_env, input=input,
        capture_output=True, text=True, timeout=timeout,
    )


CSRF_FIELD = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def form_token(page: str) -> str:
    """A form page's hidden csrf_token (the login form's), as a browser submits it back."""
    found = CSRF_FIELD.search(page)
    assert found, page[:500]
    return found.group(1)


@pytest.fixture(scope="session")
def spark_settings() -> Settings:
    """Settings of the Spark backend tests: local[2], the store's JDBC driver on the classpath."""
    return load_settings(REPO / "config.toml", environ={})


@pytest.fixture(scope="session")
def spark(spark_settings: Settings) -> Iterator[Any]:
    """The test session's one SparkSession (local[2]); the runs in it reuse it. Skips with the
    reason when pyspark or Java is not installed (scripts/test.sh installs both)."""
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed (pip install -e '.[spark]')")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Java is not installed (apt-get install openjdk-17-jre-headless)")
    from engine.spark.session import spark_session

    session = spark_session(spark_settings.spark, jars=(spark_settings.spark.jdbc_jar,))
    yield session
    session.stop()
