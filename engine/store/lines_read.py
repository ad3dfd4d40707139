"""Reading transaction lines: the lines frame every engine function takes, column-wise.

load_lines reads columns into Arrow. On a SQLite file that is the ADBC driver in a child process
(engine.store.sqlite_arrow explains why); PostgreSQL uses COPY ... TO STDOUT. Raw DB-API on
purpose: a Python object per cell through SQLAlchemy costs seconds on the real data set
(docs/benchmarks.md). Timestamps are stored as UTC; the frames returned here carry naive UTC
datetime64 values. Windows follow engine.dates' rule.
"""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from engine.columns import LINE_COLUMNS
from engine.dates import day_start, window_end
from engine.store.db import database_error, sqlite_file, sqlite_uri
from engine.store.scratch import scratch_folder


def load_lines(*, engine: Engine, since: date | None = None, until: date | None = None,
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
    return _lines_frame(_read_window(engine, since, until, names), names)


def product_lines(*, engine: Engine, non_product_codes: Sequence[str],
                  since: date | None = None, until: date | None = None) -> pa.Table:
    """The window's lines with a product stock code (not a non-product code) as Arrow columns
    customer_id (null: none), stock_code, amount, quantity, is_return (bool)."""
    codes = ", ".join("'" + code.replace("'", "''") + "'" for code in sorted(non_product_codes))
    products = "stock_code IS NOT NULL" + (f" AND stock_code NOT IN ({codes})" if codes else "")
    table = _read_window(engine, since, until,
                         ["customer_id", "stock_code", "quantity", "amount", "is_return"],
                         products, ordered=False)
    return table.set_column(0, "customer_id", empty_as_null(table.column("customer_id"))) \
        .set_column(4, "is_return", pc.not_equal(table.column("is_return"), 0))


def read_source_file(engine: Engine, file_id: int, columns: list[str]) -> pa.Table:
    """The columns (as _read_window gives them: text '' for null, ts as UTC text) of the lines
    one source file's load stored (engine.store.columnar copies them)."""
    return _read_window(engine, None, None, columns, f"source_file_id = {int(file_id)}",
                        ordered=False)


def empty_as_null(values: Any) -> Any:
    """An Arrow text column as read (COALESCE(x, '')) with '' back to null."""
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def read_arrow(engine: Engine, *, sqlite_sql: str, postgres_sql: str,
               types: dict[str, pa.DataType]) -> pa.Table:
    """The rows of a SELECT as an Arrow table, column-wise: sqlite_sql on SQLite (a file through
    the ADBC driver in a child process, an in-memory database through sqlite3), postgres_sql
    through COPY ... TO STDOUT on PostgreSQL. Both select exactly `types`' columns in its order
    and hold no parameters (callers write only dates they formatted themselves into them)."""
    try:
        path = sqlite_file(engine.url) if engine.dialect.name == "sqlite" else None
        if path is not None:
            table = _arrow_sqlite(path, sqlite_sql)
        elif engine.dialect.name == "sqlite":
            table = _arrow_dbapi(engine, sqlite_sql, types)
        else:
            table = _arrow_postgres(engine, postgres_sql, types)
        # An empty result has no rows to infer types from (the driver says null).
        return table if table.num_rows else pa.schema(types).empty_table()
    except (SQLAlchemyError, sqlite3.Error, psycopg.Error, pa.ArrowException, OSError,
            _ChildReadError) as exc:
        raise database_error(engine, exc) from None


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


_POSTGRES_TS = "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"


def _read_window(engine: Engine, since: date | None, until: date | None, columns: list[str],
                 *more: str, ordered: bool = True) -> pa.Table:
    """The columns of the lines of [since, until] as Arrow, through read_arrow. The bounds are
    written into the SQL (dates formatted here, never text from outside); `more`: further
    conditions, as SQL; ordered: as loaded (ORDER BY id, which on a window is a sort)."""
    bounds = [(operator, bound) for bound, operator in
              ((since, ">="), (window_end(until), "<")) if bound is not None]

    def query(ts_sql: str, moment: Callable[[date], str]) -> str:
        where = " AND ".join([*(f"ts {operator} '{moment(bound)}'" for operator, bound in bounds),
                              *more])
        return (f"SELECT {_select_list(ts_sql, columns)} FROM transaction_line"
                f"{' WHERE ' + where if where else ''}{' ORDER BY id' if ordered else ''}")

    types = _arrow_types()
    return read_arrow(
        engine,
        sqlite_sql=query("ts", lambda day: day.strftime("%Y-%m-%d 00:00:00.000000")),
        postgres_sql=query(_POSTGRES_TS, lambda day: day_start(day).isoformat()),
        types={name: types[name] for name in columns})


class _ChildReadError(Exception):
    """The child reader (engine.store.sqlite_arrow) failed; the message is its one line."""


def _arrow_sqlite(path: Path, sql: str) -> pa.Table:
    """The rows through the ADBC driver, which runs in a child process: it links its own copy of
    SQLite, and two copies must not open one file in one process (see engine.store.sqlite_arrow).
    """
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


def _arrow_dbapi(engine: Engine, sql: str, types: dict[str, pa.DataType]) -> pa.Table:
    """An in-memory SQLite database (tests): the rows through sqlite3, then to Arrow."""
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql)
            rows = cursor.fetchall()
        finally:
            cursor.close()
    values: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in types]
    return pa.table({name: pa.array(cells, type=kind)
                     for (name, kind), cells in zip(types.items(), values, strict=True)})


def _arrow_postgres(engine: Engine, sql: str, types: dict[str, pa.DataType]) -> pa.Table:
    buffer = io.BytesIO()
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False,
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
            values = empty_as_null(values)
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

