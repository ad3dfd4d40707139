"""Connections and schema migrations: the only place that creates SQLAlchemy engines.

Every store module reads and writes with SQLAlchemy Core over engine.store.tables; functions
are keyword-only and take the engine (or a connection) explicitly."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL, Engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlmodel import create_engine

from engine.errors import SegmintError, first_line

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# engine/migrations/env.py hands it to Alembic (its default name)
ALEMBIC_VERSION_TABLE = "alembic_version"


class StoreError(SegmintError):
    """An expected database failure (unreachable server, schema missing); message is one line."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def sqlite_file(url: str | URL) -> Path | None:
    """The file behind a file-backed SQLite URL (absolute, as the driver opens it); None for
    in-memory SQLite, SQLite URIs (`?uri=true`, whose options the caller chose) and servers."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or "uri" in parsed.query:
        return None
    database = parsed.database
    if not database or database == ":memory:":
        return None
    return Path(os.path.abspath(database))


def sqlite_uri(path: Path, mode: str) -> str:
    """The SQLite URI opening `path` in `mode` (ro: read-only, rw: never creates the file)."""
    return f"{path.resolve().as_uri()}?mode={mode}"


def _open_existing(path: Path) -> Any:
    """A do_connect hook opening the file with mode=rw: SQLite then refuses to create it, so a
    command pointed at a missing database leaves no empty file behind (init_db creates it)."""
    uri = sqlite_uri(path, "rw")

    def do_connect(_dialect, _record, cargs, cparams) -> None:  # type: ignore[no-untyped-def]
        cargs[:] = [uri]
        cparams["uri"] = True

    return do_connect


@cache
def get_engine(url: str, echo: bool = False, *, setting: str = "database URL") -> Engine:
    """One engine per URL and process (pooled connections are not shared across forks). A
    SQLite file is never created here, only by init_db. A URL that does not parse or names a
    driver that is not installed is a one-line StoreError naming `setting` (where the URL came
    from). Statement parameters never appear in logs or error messages (hide_parameters): a
    failed INSERT would otherwise print a password hash or a customer's phone number."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not echoed: a URL that does not parse may still hold a password.
        raise StoreError(f"{setting}: the database URL does not parse (expected "
                         "dialect+driver://user@host:port/database, e.g. "
                         "postgresql+psycopg://user@host/db or sqlite:///path/to/file.db)") \
            from None
    try:
        return _create_engine(parsed, echo)
    except (ImportError, NoSuchModuleError) as exc:
        missing = getattr(exc, "name", None) or first_line(exc)
        raise StoreError(f"{setting}: database {describe(url)}: driver {missing} is not "
                         "installed (for PostgreSQL use postgresql+psycopg://, the driver "
                         "Segmint ships with)") from None


def _create_engine(parsed: URL, echo: bool) -> Engine:
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            # Made absolute once: a later chdir cannot point the engine, and the reader that
            # load_lines starts from engine.url, at two different files.
            parsed = parsed.set(database=str(path))
        engine = create_engine(parsed, echo=echo, hide_parameters=True,
                               connect_args={"timeout": 30})
        if path is not None:
            event.listen(engine, "do_connect", _open_existing(path))
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, echo=echo, hide_parameters=True, pool_pre_ping=True)


def describe(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


class DataRefused(StoreError):
    """The database refused the data itself (a value it cannot store, a broken constraint): the
    same data fails the same way again, unlike an unreachable, locked or full database."""


# DB-API 2 names these two for every driver (sqlite3, psycopg) and SQLAlchemy wraps them in
# classes of the same names.
_DATA_ERRORS = frozenset({"DataError", "IntegrityError"})


def database_message(url: str | None, exc: BaseException) -> str:
    """One line naming the database (password hidden; just "database" when unknown) and the
    driver's first line only: never the statement or its parameters."""
    orig = getattr(exc, "orig", None) or exc
    where = f"database {describe(url)}" if url else "database"
    return f"{where}: {first_line(orig)[:300]}"


def database_error(engine: Engine, exc: BaseException) -> StoreError:
    """A one-line StoreError naming the database and the driver's reason; DataRefused when the
    database refused the data."""
    orig = getattr(exc, "orig", None) or exc
    refused = any(cls.__name__ in _DATA_ERRORS
                  for error in (exc, orig) for cls in type(error).__mro__)
    return (DataRefused if refused else StoreError)(database_message(str(engine.url), exc))


def check_connection(*, engine: Engine) -> None:
    path = sqlite_file(engine.url)
    if path is not None and not path.is_file():
        where = describe(str(engine.url))
        raise StoreError(f"database {where} does not exist: run `segmint init-db` first")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = first_line(exc.orig or exc)
        raise StoreError(f"database {describe(str(engine.url))} is unreachable: {reason}") from None


def _alembic_config() -> Config:
    from alembic.config import Config

    # The connection is handed to env.py through config.attributes; no URL goes through the
    # ini parser (it would choke on the '%' of URL-encoded options).
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def init_db(*, engine: Engine) -> str:
    """Create or upgrade the schema to the latest migration; idempotent. Returns the revision.
    The one place a SQLite file (and its folder) is created."""
    from alembic import command

    _create_sqlite_file(engine)
    check_connection(engine=engine)
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed on {describe(str(engine.url))}: {exc}") from None
    return current_revision(engine=engine) or ""


def _create_sqlite_file(engine: Engine) -> None:
    path = sqlite_file(engine.url)
    if path is None or path.is_file():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()  # an empty file is an empty SQLite database
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StoreError(f"database {describe(str(engine.url))} cannot be created: {reason}") \
            from None


def current_revision(*, engine: Engine) -> str | None:
    """The schema's migration (None: init-db never ran), read as Alembic reads it (does its
    version table exist, then one SELECT of it) without importing alembic, which would cost
    every command about 0.5 s of CPU."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(ALEMBIC_VERSION_TABLE):
            return None
        found = connection.execute(
            text(f"SELECT version_num FROM {ALEMBIC_VERSION_TABLE}")).scalars().all()
    if len(found) > 1:  # Alembic's own MigrationContext refuses this too (branches)
        raise StoreError(f"database {describe(str(engine.url))} is at several migrations "
                         f"({', '.join(sorted(found))}): not a schema Segmint made")
    return found[0] if found else None


def require_schema(*, engine: Engine) -> None:
    """Stop with a clear message when init-db has not been run on this database."""
    check_connection(engine=engine)
    if current_revision(engine=engine) is None:
        where = describe(str(engine.url))
        raise StoreError(f"database {where} has no Segmint schema: run `segmint init-db` first")
