"""Transaction lines, products and customers: bulk writes for ingest and the frame readers.

Writes go through the raw DBAPI connection inside one SQLAlchemy transaction. On SQLite the lines
are copied by the ADBC driver into scratch SQLite files (never the store itself) in a worker
thread, which the transaction attaches and copies with INSERT OR IGNORE ... SELECT as they come
(engine.store.sqlite_staging); PostgreSQL gets COPY into a temporary table followed by
INSERT ... ON CONFLICT DO NOTHING. A file therefore lands whole or not
at all, and a line whose (ts, hash) is already stored (same line from another file, or the same
file again) is skipped.

Reads: load_lines reads columns into Arrow. On a SQLite file that is the ADBC driver in a child
process (engine.store.sqlite_arrow explains why); PostgreSQL uses COPY ... TO STDOUT.

Timestamps are stored as UTC (the columns are timezone-aware on PostgreSQL); the frames returned
here carry naive UTC datetime64 values.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from engine.models import Customer, Product, SourceFile, TransactionLine
from engine.store.db import StoreError, database_error, sqlite_file, sqlite_uri
from engine.store.scratch import scratch_folder

if TYPE_CHECKING:
    from engine.store.sqlite_staging import SqliteStaging

log = logging.getLogger(__name__)

LINE_TABLE = TransactionLine.__table__  # type: ignore[attr-defined]
CUSTOMER_TABLE = Customer.__table__  # type: ignore[attr-defined]
PRODUCT_TABLE = Product.__table__  # type: ignore[attr-defined]
SOURCE_TABLE = SourceFile.__table__  # type: ignore[attr-defined]

# Columns of the lines frame every engine function takes (see load_lines).
LINE_COLUMNS = ["invoice", "stock_code", "description", "quantity", "unit_price", "amount", "ts",
                "customer_id", "country", "is_return"]
# What ingest hands to write_lines: the frame columns plus the line's identity.
STAGED_LINE_COLUMNS = ["line_hash", "line_no", *LINE_COLUMNS]
CUSTOMER_COLUMNS = ["customer_id", "first_name", "phone", "phone_status", "signup_date", "country",
                    "sms_consent", "timezone"]

ProgressCallback = Callable[[int], None]
# (product rows, customer rows) a file's lines add; see _side_rows.
SideRows = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class LoadedFile:
    """A source_file row: what an earlier ingest of the same bytes did."""

    id: int
    path: str
    kind: str
    loaded_at: datetime
    lines_read: int
    lines_loaded: int
    duplicates: int
    rejected: int


@dataclass
class StagedFile:
    """A validated file, ready to be written: transactions (lines) or customers (customers)."""

    path: str
    sha256: str
    kind: str  # transactions | customers
    lines_read: int
    duplicates: int  # exact duplicates inside the file
    rejected: int
    lines: pd.DataFrame | None = None  # STAGED_LINE_COLUMNS
    customers: pd.DataFrame | None = None  # CUSTOMER_COLUMNS
    # Text columns of `lines` that Arrow holds too (the same cells, row for row), copied as they
    # are to the SQLite staging file instead of converting the Python strings back.
    text_arrays: dict[str, pa.ChunkedArray] = field(default_factory=dict)
    loaded: int = 0  # filled in by write_files
    duplicates_in_db: int = 0  # filled in by write_files


def find_loaded_file(engine: Engine, *, sha256: str) -> LoadedFile | None:
    """The earlier load of a file with these exact bytes, if any."""
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(SOURCE_TABLE).where(SOURCE_TABLE.c.sha256 == sha256)).mappings().first()
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None
    if row is None:
        return None
    return LoadedFile(**{key: row[key] for key in LoadedFile.__dataclass_fields__})


def write_files(engine: Engine, *, files: list[StagedFile], batch_size: int = 50_000,
                on_progress: ProgressCallback | None = None) -> None:
    """Write the staged files in ONE transaction; fills each file's loaded / duplicates_in_db.

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
                                staging=staging, side_rows=side_rows.get(index))
    except IntegrityError as exc:
        raise StoreError(f"{files[0].path}: was loaded by another process at the same time "
                         f"({database_error(engine, exc)})") from None
    except (SQLAlchemyError, sqlite3.Error, psycopg.Error, AdbcError) as exc:
        raise database_error(engine, exc) from None


def _write_file(connection: Connection, staged: StagedFile, index: int, batch_size: int,
                on_progress: ProgressCallback | None, *, staging: SqliteStaging | None,
                side_rows: Future[SideRows] | None) -> None:
    source_id = connection.execute(
        insert(SOURCE_TABLE).values(
            path=staged.path, sha256=staged.sha256, kind=staged.kind,
            loaded_at=datetime.now(UTC), lines_read=staged.lines_read, lines_loaded=0,
            duplicates=staged.duplicates, rejected=staged.rejected,
        ).returning(SOURCE_TABLE.c.id)
    ).scalar_one()
    if staged.lines is not None:
        if staging is not None:
            staged.loaded = staging.insert_lines(connection, index, source_id, on_progress)
        else:
            staged.loaded = _write_lines(connection, staged.lines, source_id, batch_size,
                                         on_progress)
        staged.duplicates_in_db = len(staged.lines) - staged.loaded
        products, customers = (side_rows.result() if side_rows is not None
                               else _side_rows(staged.lines))
        _execute_rows(connection, _product_upsert(connection), products)
        _execute_rows(connection, _customer_insert(connection), customers)
    if staged.customers is not None:
        _upsert_customers(connection, staged.customers)
        staged.loaded = len(staged.customers)
    connection.execute(
        update(SOURCE_TABLE).where(SOURCE_TABLE.c.id == source_id).values(
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


def timestamp_array(ts: pd.Series) -> pa.Array:
    """'YYYY-MM-DD HH:MM:SS.ffffff' (the layout SQLAlchemy's SQLite DateTime writes, so range
    filters compare as text correctly) as an Arrow string array, formatted once per distinct
    time (lines of one invoice share it) and repeated by index."""
    codes, distinct = pd.factorize(ts.to_numpy(dtype="datetime64[us]"))
    text = pc.replace_substring(pa.array(np.datetime_as_string(distinct, unit="us")), "T", " ")
    return text.take(pa.array(codes)) if len(codes) else text


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
    statement = _dialect_insert(connection, PRODUCT_TABLE)
    return statement.on_conflict_do_update(
        index_elements=["stock_code"],
        set_={"description": func.coalesce(statement.excluded.description,
                                           PRODUCT_TABLE.c.description)},
    )


def _customer_insert(connection: Connection) -> Any:
    """A customer row for ids the customer table does not know yet (known ones are left as
    they are: the customers file owns their details)."""
    return _dialect_insert(connection, CUSTOMER_TABLE).on_conflict_do_nothing(
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
    statement = _dialect_insert(connection, CUSTOMER_TABLE)
    updates = {column: statement.excluded[column] for column in CUSTOMER_COLUMNS[1:]}
    # 'invalid' set by the provider (Twilio 21211/21614) outlives a reload of the same number;
    # a new number starts again from what the file's parse says.
    from sqlalchemy import and_, case
    kept_invalid = and_(CUSTOMER_TABLE.c.phone_status == "invalid",
                        CUSTOMER_TABLE.c.phone == statement.excluded.phone)
    updates["phone_status"] = case((kept_invalid, "invalid"),
                                   else_=statement.excluded.phone_status)
    statement = statement.on_conflict_do_update(index_elements=["customer_id"], set_=updates)
    for start in range(0, len(rows), 5_000):
        connection.execute(statement, rows[start:start + 5_000])


# ---------------------------------------------------------------------------------------------
# Readers


def _utc_bound(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def load_lines(engine: Engine, since: date | None = None, until: date | None = None, *,
               columns: Sequence[str] = LINE_COLUMNS) -> pd.DataFrame:
    """The lines frame, optionally limited to [since, until] (whole days, both inclusive).

    Columns: invoice, stock_code, description, quantity, unit_price, amount, ts (naive UTC
    datetime64[ns]), customer_id (str or None), country, is_return (bool); or only those of
    `columns` (in LINE_COLUMNS order), which reads less. Ordered as loaded.

    The rows are read column-wise into Arrow (a SQLite file through the ADBC driver in a child
    process, PostgreSQL through COPY ... TO STDOUT parsed by pyarrow.csv), never as one Python
    object per cell; the text columns come out as object columns whose repeated values share
    one Python string.
    """
    unknown = sorted(set(columns) - set(LINE_COLUMNS))
    if unknown or not columns:
        raise ValueError(f"load_lines: unknown columns {unknown}" if unknown
                         else "load_lines: no columns asked for")
    names = [name for name in LINE_COLUMNS if name in columns]
    sqlite_db = engine.dialect.name == "sqlite"
    conditions = [(operator, bound) for bound, operator in
                  ((since, ">="), (until + timedelta(days=1) if until else None, "<"))
                  if bound is not None]
    try:
        path = sqlite_file(engine.url) if sqlite_db else None
        if path is not None:
            table = _arrow_lines_sqlite(path, conditions, names)
        elif sqlite_db:
            table = _arrow_lines_dbapi(engine, conditions, names)
        else:
            table = _arrow_lines_postgres(engine, conditions, names)
    except (SQLAlchemyError, sqlite3.Error, psycopg.Error, pa.ArrowException, OSError,
            _ChildReadError) as exc:
        raise database_error(engine, exc) from None
    return _lines_frame(table, names)


# Text columns never hold '' (ingest stores an empty cell as NULL), so COALESCE(x, '') gives the
# Arrow readers a column that is text from the first row on, and '' is turned back into null.
_TEXT = ("invoice", "stock_code", "description", "customer_id", "country")
_NUMBERS = ("quantity", "unit_price", "amount")


def _arrow_types() -> dict[str, pa.DataType]:
    return {name: pa.string() for name in (*_TEXT, "ts")} | \
        {name: pa.float64() for name in _NUMBERS} | {"is_return": pa.int64()}


def _select_list(ts_sql: str, columns: list[str]) -> str:
    names = []
    for name in columns:
        if name in _TEXT:
            names.append(f"COALESCE({name}, '') AS {name}")
        elif name in _NUMBERS:
            names.append(f"CAST({name} AS {'REAL' if ts_sql == 'ts' else 'float8'}) AS {name}")
        elif name == "ts":
            names.append(f"{ts_sql} AS ts")
        else:
            names.append(f"CAST({name} AS INTEGER) AS {name}")
    return ", ".join(names)


def _sqlite_query(conditions: list[tuple[str, date]], columns: list[str], *,
                  literal: bool = False) -> tuple[str, list[str]]:
    """The SELECT and its parameters; with literal=True the bounds are written into the SQL
    (they are dates formatted here, never text from outside) and no parameters are left."""
    params = [bound.strftime("%Y-%m-%d 00:00:00.000000") for _, bound in conditions]
    where = " AND ".join(f"ts {operator} {repr(bound) if literal else '?'}"
                         for (operator, _), bound in zip(conditions, params, strict=True))
    params = [] if literal else params
    sql = (f"SELECT {_select_list('ts', columns)} FROM transaction_line"
           f"{' WHERE ' + where if where else ''} ORDER BY id")
    return sql, params


class _ChildReadError(Exception):
    """The child reader (engine.store.sqlite_arrow) failed; the message is its one line."""


def _arrow_lines_sqlite(path: Path, conditions: list[tuple[str, date]],
                        columns: list[str]) -> pa.Table:
    """The rows through the ADBC driver, which runs in a child process: it links its own copy of
    SQLite, and two copies must not open one file in one process (see engine.store.sqlite_arrow).
    """
    sql, _ = _sqlite_query(conditions, columns, literal=True)
    uri = sqlite_uri(path, "ro")
    with scratch_folder("read") as folder:
        target = folder / "lines.arrow"
        completed = subprocess.run(
            # The file as a script in isolated mode (-I): the child imports only pyarrow and the
            # driver, not the engine package around it.
            [sys.executable, "-I", str(Path(__file__).with_name("sqlite_arrow.py")), uri, sql,
             str(target)],
            capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            lines = completed.stderr.strip().splitlines()
            raise _ChildReadError(lines[-1] if lines else f"reader exited {completed.returncode}")
        with pa.OSFile(str(target)) as source:
            return pa.ipc.open_file(source).read_all()


def _arrow_lines_dbapi(engine: Engine, conditions: list[tuple[str, date]],
                       columns: list[str]) -> pa.Table:
    """An in-memory SQLite database (tests): the rows through sqlite3, then to Arrow."""
    sql, params = _sqlite_query(conditions, columns)
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        finally:
            cursor.close()
    values: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in columns]
    types = _arrow_types()
    return pa.table({name: pa.array(cells, type=types[name])
                     for name, cells in zip(columns, values, strict=True)})


def _arrow_lines_postgres(engine: Engine, conditions: list[tuple[str, date]],
                          columns: list[str]) -> pa.Table:
    from psycopg import sql as pgsql

    ts_sql = "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    where = " AND ".join(f"ts {operator} {{}}" for operator, _ in conditions)
    query = pgsql.SQL(f"COPY (SELECT {_select_list(ts_sql, columns)} FROM transaction_line"
                      f"{' WHERE ' + where if where else ''} ORDER BY id) "
                      "TO STDOUT WITH (FORMAT csv, HEADER true)").format(
        *[pgsql.Literal(_utc_bound(bound)) for _, bound in conditions])
    buffer = io.BytesIO()
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(query) as copy:  # type: ignore[union-attr]
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    types = _arrow_types()
    options = pacsv.ConvertOptions(column_types={name: types[name] for name in columns},
                                   strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    return pacsv.read_csv(buffer, convert_options=options)


def _lines_frame(table: pa.Table, names: list[str]) -> pd.DataFrame:
    """Arrow columns -> the lines frame (object text with None, float64, datetime64[ns], bool)."""
    columns: dict[str, Any] = {}
    types = _arrow_types()
    for name in names:
        values = table.column(name)
        if not len(values):  # an empty result has no rows to infer types from
            values = pa.chunked_array([], type=types[name])
        if name in _TEXT:
            values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
        elif name == "ts":
            values = pc.cast(values, pa.timestamp("us")).cast(pa.timestamp("ns"))
        elif name == "is_return":
            values = pc.not_equal(values, 0)
        elif name in _NUMBERS:
            values = values.cast(pa.float64())
        columns[name] = values
    frame = pa.table(columns).to_pandas(deduplicate_objects=True, self_destruct=True,
                                        split_blocks=True)
    for name in [name for name in _TEXT if name in names]:  # all-null comes back as NaN
        if frame[name].dtype != object:
            frame[name] = pd.Series(None, index=frame.index, dtype=object)
    if "ts" in names:
        frame["ts"] = frame["ts"].astype("datetime64[ns]")
    if "is_return" in names:
        frame["is_return"] = frame["is_return"].astype(bool)
    return frame


def load_customers(engine: Engine) -> pd.DataFrame:
    """The customers frame: customer_id, first_name, phone, phone_status, signup_date
    (datetime64[ns], NaT when unknown), country, sms_consent (bool), timezone."""
    query = select(*[CUSTOMER_TABLE.c[name] for name in CUSTOMER_COLUMNS]) \
        .order_by(CUSTOMER_TABLE.c.customer_id)
    try:
        with engine.connect() as connection:
            frame = pd.read_sql(query, connection)
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None
    frame = frame.reindex(columns=CUSTOMER_COLUMNS)
    for column in ("customer_id", "first_name", "phone", "phone_status", "country", "timezone"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["signup_date"] = pd.to_datetime(frame["signup_date"]).astype("datetime64[ns]")
    frame["sms_consent"] = frame["sms_consent"].fillna(False).astype(bool)
    return frame


def count_rows(engine: Engine) -> dict[str, int]:
    """Rows per ingest table (source_file, transaction_line, product, customer)."""
    tables = {"source_file": SOURCE_TABLE, "transaction_line": LINE_TABLE,
              "product": PRODUCT_TABLE, "customer": CUSTOMER_TABLE}
    try:
        with engine.connect() as connection:
            return {name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                    for name, table in tables.items()}
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None
