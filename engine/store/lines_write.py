"""Writing ingested files: transaction lines, products and customers, in one transaction.

Writes go through the raw DBAPI connection inside one SQLAlchemy transaction (measured several
times faster than Core inserts for half a million lines: docs/benchmarks.md). On SQLite the lines
are copied by the ADBC driver into scratch SQLite files (never the store itself) in a worker
thread, which the transaction attaches and copies with INSERT OR IGNORE ... SELECT as they come
(engine.store.sqlite_staging); PostgreSQL gets COPY into a temporary table followed by
INSERT ... ON CONFLICT DO NOTHING. A file therefore lands whole or not at all, and a line whose
(ts, hash) is already stored (same line from another file, or the same file again) is skipped.
Timestamps are stored as UTC (the columns are timezone-aware on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import Connection, Engine, and_, case, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from engine.columns import CUSTOMER_COLUMNS, STAGED_LINE_COLUMNS
from engine.dates import utc_now
from engine.store import invoice_days
from engine.store.db import StoreError, database_error
from engine.store.scratch import scratch_folder
from engine.store.staged import LoadedFile, ProgressCallback, StagedFile, timestamp_array
from engine.store.tables import CUSTOMERS, INVOICE_DAYS, LINES, PRODUCTS, SOURCE_FILES

if TYPE_CHECKING:
    from engine.store.sqlite_staging import SqliteStaging

log = logging.getLogger(__name__)

# (product rows, customer rows) a file's lines add; see _side_rows.
SideRows = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def find_loaded_file(*, engine: Engine, sha256: str) -> LoadedFile | None:
    """The earlier load of a file with these exact bytes, if any."""
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(SOURCE_FILES).where(SOURCE_FILES.c.sha256 == sha256)).mappings().first()
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None
    if row is None:
        return None
    return LoadedFile(**{key: row[key] for key in LoadedFile.__dataclass_fields__})


def write_files(*, engine: Engine, files: list[StagedFile], batch_size: int = 50_000,
                on_progress: ProgressCallback | None = None,
                non_product_codes: Sequence[str] | None = None) -> None:
    """Write the staged files in ONE transaction; fills each file's loaded / duplicates_in_db.
    The lines inserted are added to the invoice_day summary in the same transaction, with
    non_product_codes (None: the ones the summary was built with).

    Raises StoreError (nothing written) when the database refuses; an IntegrityError on the
    file's sha256 means another process loaded the same bytes meanwhile.
    """
    from adbc_driver_manager import Error as AdbcError

    try:
        with contextlib.ExitStack() as stack:
            staging: SqliteStaging | None = None
            side_rows: dict[int, Future[SideRows]] = {}
            if engine.dialect.name == "sqlite" and any(
                    item.lines is not None and len(item.lines) for item in files):
                from engine.store.sqlite_staging import SqliteStaging

                folder = stack.enter_context(scratch_folder("load"))
                staging = stack.enter_context(SqliteStaging(folder, files, batch_size))
                side_rows = {index: staging.submit(_side_rows, item.lines)
                             for index, item in enumerate(files) if item.lines is not None}
            connection = stack.enter_context(engine.connect())
            if staging is not None:
                stack.enter_context(staging.attachments(connection))
                stack.enter_context(_foreign_keys_unchecked(connection))
            with connection.begin():
                for index, staged in enumerate(files):
                    _write_file(connection, staged, index, batch_size, on_progress,
                                staging=staging, side_rows=side_rows.get(index),
                                codes=non_product_codes)
    except IntegrityError as exc:
        raise StoreError(f"{files[0].path}: was loaded by another process at the same time "
                         f"({database_error(engine, exc)})") from None
    except (SQLAlchemyError, sqlite3.Error, psycopg.Error, AdbcError) as exc:
        raise database_error(engine, exc) from None
    refresh_statistics(engine, files)


def refresh_statistics(engine: Engine, files: list[StagedFile]) -> None:
    """On PostgreSQL, after a load: ANALYZE the tables it grew, so the planner knows their
    size at once instead of whenever autovacuum gets to them (never, where it is off). A
    10 M-line store never analysed served a date window's Overview in 1.7-2.2 s, 1.3-1.6 s
    once analysed (docs/benchmarks.md). About 2 s at 10 M lines. A refusal is a warning: the
    load is committed."""
    if engine.dialect.name != "postgresql":
        return
    if not any(item.loaded for item in files):
        return
    tables = [LINES.name, INVOICE_DAYS.name, CUSTOMERS.name]  # lines add customers too
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(text(f"ANALYZE {', '.join(tables)}"))
    except SQLAlchemyError as exc:
        log.warning("planner statistics not refreshed after the load: %s",
                    database_error(engine, exc))


def _write_file(connection: Connection, staged: StagedFile, index: int, batch_size: int,
                on_progress: ProgressCallback | None, *, staging: SqliteStaging | None,
                side_rows: Future[SideRows] | None, codes: Sequence[str] | None) -> None:
    source_id = connection.execute(
        insert(SOURCE_FILES).values(
            path=staged.path, sha256=staged.sha256, kind=staged.kind,
            loaded_at=utc_now(), lines_read=staged.lines_read, lines_loaded=0,
            duplicates=staged.duplicates, rejected=staged.rejected,
        ).returning(SOURCE_FILES.c.id)
    ).scalar_one()
    if staged.lines is not None:
        last_id = connection.execute(select(func.max(LINES.c.id))).scalar_one() or 0
        if staging is not None:
            staged.loaded = staging.insert_lines(connection, index, source_id, on_progress)
        else:
            staged.loaded = _write_lines(connection, staged.lines, source_id, batch_size,
                                         on_progress)
        staged.duplicates_in_db = len(staged.lines) - staged.loaded
        invoice_days.add_lines(connection, source_file_id=source_id, after_id=last_id,
                               codes=codes)
        products, customers = (side_rows.result() if side_rows is not None
                               else _side_rows(staged.lines))
        _execute_rows(connection, _product_upsert(connection), products)
        _execute_rows(connection, _customer_insert(connection), customers)
    if staged.customers is not None:
        _upsert_customers(connection, staged.customers)
        staged.loaded = len(staged.customers)
    connection.execute(
        update(SOURCE_FILES).where(SOURCE_FILES.c.id == source_id).values(
            lines_loaded=staged.loaded, duplicates=staged.duplicates + staged.duplicates_in_db))


@contextlib.contextmanager
def _foreign_keys_unchecked(connection: Connection) -> Iterator[None]:
    """SQLite's per-row foreign key look-up switched off for the load's transaction (about
    0.4 s on 540k lines): the only reference the load writes is each line's source_file_id, one
    bound value, the id of the source_file row the same transaction has just inserted. The other
    tables it writes (product, customer) reference nothing. Set outside any transaction (SQLite
    ignores the PRAGMA inside one) and put back afterwards."""
    raw = connection.connection.driver_connection
    enabled = raw.execute("PRAGMA foreign_keys").fetchone()[0]  # type: ignore[union-attr]
    raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        yield
    finally:
        try:
            raw.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")  # type: ignore[union-attr]
        except sqlite3.Error:
            connection.invalidate()  # never hand a connection without its checks back


def _timestamp_text(ts: pd.Series, suffix: str = "") -> list[str]:
    """timestamp_array as Python strings, optionally with a zone suffix."""
    text: list[str] = timestamp_array(ts).to_pylist()
    return [value + suffix for value in text] if suffix else text


def _column_lists(frame: pd.DataFrame, source_id: int, ts_suffix: str = "") -> list[list[Any]]:
    """Each column as a list of plain Python values (None for missing), in `columns` order."""
    columns: list[list[Any]] = [[source_id] * len(frame)]
    for name in STAGED_LINE_COLUMNS:
        values = frame[name]
        if name == "ts":
            columns.append(_timestamp_text(values, ts_suffix))
        elif name == "is_return":
            columns.append(values.astype(int).tolist())
        elif values.dtype == object:
            columns.append(values.where(values.notna(), None).tolist())
        else:
            columns.append(values.tolist())
    return columns


def _write_lines(connection: Connection, lines: pd.DataFrame, source_id: int, batch_size: int,
                 on_progress: ProgressCallback | None) -> int:
    """Insert the lines that are not stored yet on PostgreSQL (SQLite: SqliteStaging); returns
    how many were inserted."""
    if not len(lines):
        return 0
    if connection.dialect.name != "postgresql":
        raise StoreError(f"bulk load is not supported on {connection.dialect.name}")
    columns = ["source_file_id", *STAGED_LINE_COLUMNS]
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute("CREATE TEMP TABLE staged_line (LIKE transaction_line INCLUDING DEFAULTS) "
                       "ON COMMIT DROP")
        copy_sql = f"COPY staged_line ({', '.join(columns)}) FROM STDIN"
        with cursor.copy(copy_sql) as copy:
            for start in range(0, len(lines), batch_size):
                chunk = lines.iloc[start:start + batch_size]
                for row in zip(*_column_lists(chunk, source_id, "+00"), strict=True):
                    copy.write_row(row)
                log.debug("staged %d of %d lines", start + len(chunk), len(lines))
                if on_progress:
                    on_progress(len(chunk))
        cursor.execute(
            f"INSERT INTO transaction_line ({', '.join(columns)}) "
            f"SELECT {', '.join(columns)} FROM staged_line ORDER BY line_no "
            "ON CONFLICT (ts, line_hash) DO NOTHING")
        loaded = cursor.rowcount
        cursor.execute("DROP TABLE staged_line")
    return int(loaded)


def _dialect_insert(connection: Connection, table: Any) -> Any:
    module = sqlite if connection.dialect.name == "sqlite" else postgresql
    return module.insert(table)


def _time_order(ts: pd.Series) -> np.ndarray:
    """Row positions by ts, ties in row order (what _latest takes)."""
    return np.argsort(ts.to_numpy(), kind="stable")


def _latest(keys: pd.Series, values: pd.Series, order: np.ndarray) -> pd.Series:
    """For each distinct key (sorted; None keys left out): the value of its latest row by ts, the
    later line winning a tie, among the rows whose value is not None (None when no row has one).
    order: _time_order of the rows' ts. Vectorised on integer codes (no sort of the object
    columns)."""
    codes, uniques = pd.factorize(keys.to_numpy())  # None -> -1
    wanted = (codes >= 0) & values.notna().to_numpy()
    rows = order[wanted[order]]  # the wanted rows by ts, ties in row order
    # Each code's last row in that order: its first in the reversed order.
    last_codes, first_reversed = np.unique(codes[rows][::-1], return_index=True)
    latest = np.full(len(uniques), None, dtype=object)
    latest[last_codes] = values.to_numpy()[rows[::-1][first_reversed]]
    result = pd.Series(latest, index=pd.Index(uniques, dtype=object), dtype=object)
    return result.sort_index()


def _side_rows(lines: pd.DataFrame) -> SideRows:
    """What a file's lines add to product and customer: each stock_code with the latest
    description the file gives it, and each customer id with the last country seen. Pure (no
    database), so the SQLite load computes it in its worker while the lines are inserted."""
    order = _time_order(lines["ts"])
    products = _latest(lines["stock_code"], lines["description"], order)
    customers = _latest(lines["customer_id"], lines["country"], order)
    return ([{"stock_code": code, "description": description}
             for code, description in products.items()],
            [{"customer_id": customer_id, "country": country, "phone_status": "unknown",
              "sms_consent": False} for customer_id, country in customers.items()])


def _product_upsert(connection: Connection) -> Any:
    """A product row per stock code; a known product takes the new description (kept when the
    file has none)."""
    statement = _dialect_insert(connection, PRODUCTS)
    return statement.on_conflict_do_update(
        index_elements=["stock_code"],
        set_={"description": func.coalesce(statement.excluded.description,
                                           PRODUCTS.c.description)},
    )


def _customer_insert(connection: Connection) -> Any:
    """A customer row for ids the customer table does not know yet (known ones are left as
    they are: the customers file owns their details)."""
    return _dialect_insert(connection, CUSTOMERS).on_conflict_do_nothing(
        index_elements=["customer_id"])


def _execute_rows(connection: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Many rows through one INSERT statement. On SQLite the statement is compiled once and run
    with sqlite3's executemany on the connection's own DBAPI connection (inside its transaction):
    a few thousand product or customer rows cost about 25 us each through SQLAlchemy."""
    if not rows:
        return
    if connection.dialect.name != "sqlite":
        for start in range(0, len(rows), 5_000):
            connection.execute(statement, rows[start:start + 5_000])
        return
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(rows[0]))
    names = compiled.positiontup or []
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(str(compiled), [tuple(row[name] for name in names) for row in rows])
    finally:
        cursor.close()


def _upsert_customers(connection: Connection, customers: pd.DataFrame) -> None:
    values = customers[CUSTOMER_COLUMNS]
    rows: list[dict[str, Any]] = [
        {str(key): value for key, value in row.items()}
        for row in values.astype(object).where(values.notna(), None).to_dict("records")]
    for row in rows:
        if isinstance(row["signup_date"], pd.Timestamp):
            row["signup_date"] = row["signup_date"].date()
        row["sms_consent"] = bool(row["sms_consent"])
    statement = _dialect_insert(connection, CUSTOMERS)
    updates = {column: statement.excluded[column] for column in CUSTOMER_COLUMNS[1:]}
    # 'invalid' set by the provider (Twilio 21211/21614) outlives a reload of the same number;
    # a new number starts again from what the file's parse says.
    kept_invalid = and_(CUSTOMERS.c.phone_status == "invalid",
                        CUSTOMERS.c.phone == statement.excluded.phone)
    updates["phone_status"] = case((kept_invalid, "invalid"),
                                   else_=statement.excluded.phone_status)
    statement = statement.on_conflict_do_update(index_elements=["customer_id"], set_=updates)
    for start in range(0, len(rows), 5_000):
        connection.execute(statement, rows[start:start + 5_000])
