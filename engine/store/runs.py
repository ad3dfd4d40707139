"""Segmentation runs and their results.

A run row is created 'running' and committed at once; its results (customer_result,
cluster_profile, association_rule, recommendation) and its status 'succeeded' are written in ONE
transaction, so readers see all of a run or none of it. The published run is the succeeded run
with the highest id; 'running' and 'failed' rows never are, whatever their age.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterable
from datetime import UTC, date, datetime
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from engine.models import (
    AssociationRule,
    ClusterProfile,
    CustomerResult,
    Recommendation,
    SegmentationRun,
)
from engine.store.db import StoreError, database_error
from engine.store.locks import process_alive

if TYPE_CHECKING:
    from engine.pipeline import RunResult

RUN = SegmentationRun.__table__  # type: ignore[attr-defined]
CUSTOMER_RESULT = CustomerResult.__table__  # type: ignore[attr-defined]
CLUSTER_PROFILE = ClusterProfile.__table__  # type: ignore[attr-defined]
ASSOCIATION_RULE = AssociationRule.__table__  # type: ignore[attr-defined]
RECOMMENDATION = Recommendation.__table__  # type: ignore[attr-defined]

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
RUN_COLUMNS = ["id", "status", "started_at", "finished_at", "as_of", "since", "until", "k",
               "k_mode", "seed", "n_customers", "n_lines", "error"]
ITEM_SEPARATOR = ";"
BATCH = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


def _plain(value: Any) -> Any:
    """A value the DBAPI accepts: numpy scalars to Python, NaN/inf/NA to None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column_values(series: pd.Series) -> list[Any]:
    """A column as DBAPI values: Python scalars, NaN/inf/NA as None (column-wise, no per-cell
    work for numeric columns)."""
    numpy_dtype = isinstance(series.dtype, np.dtype)
    if numpy_dtype and series.dtype.kind in "iub":
        return series.tolist()
    if numpy_dtype and series.dtype.kind == "f":
        values = series.to_numpy(dtype=float)
        finite = np.isfinite(values)
        listed = values.tolist()
        if finite.all():
            return listed
        return [value if ok else None for value, ok in zip(listed, finite.tolist(), strict=True)]
    return [value if type(value) is str else _plain(value) for value in series.tolist()]


def _rows(frame: pd.DataFrame, columns: list[str], run_id: int) -> list[tuple[Any, ...]]:
    """One tuple per row: run_id, then ``columns`` in order."""
    return list(zip(repeat(run_id, len(frame)), *[_column_values(frame[name]) for name in columns],
                    strict=True))


def _insert(connection: Connection, table: Any, columns: list[str], frame: pd.DataFrame,
            run_id: int) -> None:
    """Bulk insert of the frame's ``columns`` (run_id first) inside the caller's transaction:
    COPY on PostgreSQL (psycopg), DBAPI executemany elsewhere. Rows become plain tuples one
    batch at a time, so a large result never exists twice in memory as Python objects."""
    if frame.empty:
        return
    preparer = connection.dialect.identifier_preparer
    names = ", ".join(preparer.quote(name) for name in ["run_id", *columns])
    target = preparer.format_table(table)
    batches = (_rows(frame.iloc[start:start + BATCH], columns, run_id)
               for start in range(0, len(frame), BATCH))
    driver = connection.connection.driver_connection
    if connection.dialect.driver == "psycopg" and driver is not None:
        with driver.cursor() as cursor, \
                cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
            for rows in batches:
                for row in rows:
                    copy.write_row(row)
        return
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {target} ({names}) VALUES ({', '.join([marker] * (len(columns) + 1))})"
    for rows in batches:
        connection.exec_driver_sql(sql, rows)


def _items(value: Any) -> str:
    if isinstance(value, str):
        return value
    return ITEM_SEPARATOR.join(str(item) for item in value)


def create_run(engine: Engine, *, params: dict[str, Any], as_of: date | None,
               since: date | None, until: date | None, k_mode: str, seed: int) -> int:
    """A new run row in status 'running', committed at once; returns its id."""
    try:
        with engine.begin() as connection:
            result = connection.execute(insert(RUN).values(
                status=RUNNING, started_at=_now(), as_of=as_of, since=since, until=until,
                k_mode=k_mode, seed=seed, params=params, diagnostics={}))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None


def save_results(engine: Engine, *, run_id: int, result: RunResult) -> None:
    """Every result of the run and its 'succeeded' status, in one transaction."""
    tables: list[tuple[Any, list[str], pd.DataFrame]] = [
        (table, [c.name for c in table.columns if c.name != "run_id"], frame)
        for table, frame in ((CUSTOMER_RESULT, result.segments),
                             (CLUSTER_PROFILE, result.profiles))]
    if result.rules is not None and len(result.rules):
        frame = result.rules.assign(antecedents=result.rules["antecedents"].map(_items),
                                    consequents=result.rules["consequents"].map(_items))
        tables.append((ASSOCIATION_RULE, ["cluster", "antecedents", "consequents", "support",
                                          "confidence", "lift", "leverage", "conviction",
                                          "zhangs_metric"], frame))
    if result.recommendations is not None and len(result.recommendations):
        tables.append((RECOMMENDATION, ["customer_id", "rank", "stock_code", "description",
                                        "score", "reason"], result.recommendations))
    try:
        with engine.begin() as connection:
            for table, columns, frame in tables:
                _insert(connection, table, columns, frame, run_id)
            if result.clv is not None:
                from engine.store import clv as clv_store

                clv_store.write(connection, run_id=run_id, clv=result.clv)
            connection.execute(update(RUN).where(RUN.c.id == run_id).values(
                status=SUCCEEDED, finished_at=_now(), as_of=result.as_of, k=result.k,
                k_mode=result.k_mode, seed=result.seed, n_customers=result.n_customers,
                n_lines=result.n_lines, diagnostics=result.diagnostics, error=None))
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None
    except engine.dialect.loaded_dbapi.Error as exc:  # from COPY, on the driver's own cursor
        raise database_error(engine, exc) from None


def mark_failed(engine: Engine, *, run_id: int, error: str) -> None:
    """Status 'failed' with the error; results of the run (if any slipped in) are removed."""
    from engine.store import clv as clv_store

    with engine.begin() as connection:
        clv_store.remove(connection, run_id=run_id)
        for table in (RECOMMENDATION, ASSOCIATION_RULE, CLUSTER_PROFILE, CUSTOMER_RESULT):
            connection.execute(delete(table).where(table.c.run_id == run_id))
        connection.execute(update(RUN).where(RUN.c.id == run_id).values(
            status=FAILED, finished_at=_now(), error=error[:2000]))


def _process_gone(pid: Any) -> bool:
    return isinstance(pid, int) and pid > 0 and not process_alive(pid)


def fail_abandoned_runs(engine: Engine) -> list[int]:
    """Marks failed the 'running' rows whose process (on this host) no longer exists, e.g. a
    run killed with SIGKILL. Rows of live processes and of other hosts are left alone."""
    host = socket.gethostname()
    with engine.connect() as connection:
        rows = connection.execute(select(RUN.c.id, RUN.c.params).where(RUN.c.status == RUNNING))
        abandoned = [row.id for row in rows
                     if (row.params or {}).get("host") == host
                     and _process_gone((row.params or {}).get("pid"))]
    for run_id in abandoned:
        mark_failed(engine, run_id=run_id, error="abandoned: the process running it ended "
                                                 "without finishing (killed?)")
    return abandoned


def published_run_id(engine: Engine) -> int | None:
    """The latest succeeded run, or None before the first success."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.max(RUN.c.id)).where(RUN.c.status == SUCCEEDED)).scalar_one_or_none()


def list_runs(engine: Engine) -> pd.DataFrame:
    """Every run, newest first (RUN_COLUMNS)."""
    with engine.connect() as connection:
        rows = connection.execute(select(*[RUN.c[name] for name in RUN_COLUMNS])
                                  .order_by(RUN.c.id.desc())).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=RUN_COLUMNS)


def get_run(engine: Engine, *, run_id: int) -> dict[str, Any] | None:
    """The run row as a dict (with params and diagnostics), or None."""
    with engine.connect() as connection:
        row = connection.execute(select(RUN).where(RUN.c.id == run_id)).mappings().first()
    return dict(row) if row is not None else None


def resolve_run(engine: Engine, ref: str | int | None) -> int:
    """A run reference from the command line: an id or 'latest' (= published); the run must
    have succeeded."""
    if ref is None or str(ref).lower() == "latest":
        run_id = published_run_id(engine)
        if run_id is None:
            raise StoreError("no succeeded run yet: run `segmint run` first")
        return run_id
    try:
        run_id = int(ref)
    except ValueError:
        raise StoreError(f"run {ref!r} is not a run id or 'latest'") from None
    run = get_run(engine, run_id=run_id)
    if run is None:
        raise StoreError(f"run {run_id} does not exist")
    if run["status"] != SUCCEEDED:
        raise StoreError(f"run {run_id} has status {run['status']}; it has no results")
    return run_id


def _read(engine: Engine, table: Any, run_id: int, order: Iterable[str]) -> pd.DataFrame:
    columns = [c for c in table.columns if c.name not in ("run_id", "id")]
    query = select(*columns).where(table.c.run_id == run_id) \
        .order_by(*[table.c[name] for name in order])
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=[c.name for c in columns])


def read_segments(engine: Engine, *, run_id: int) -> pd.DataFrame:
    return _read(engine, CUSTOMER_RESULT, run_id, ["customer_id"])


def read_profiles(engine: Engine, *, run_id: int) -> pd.DataFrame:
    return _read(engine, CLUSTER_PROFILE, run_id, ["cluster"])


def read_rules(engine: Engine, *, run_id: int) -> pd.DataFrame:
    """Rules with item sets as ';'-joined stock codes; cluster None = all customers."""
    frame = _read(engine, ASSOCIATION_RULE, run_id, ["id"])
    frame["cluster"] = frame["cluster"].astype(object).where(frame["cluster"].notna(), None)
    return frame


def read_recommendations(engine: Engine, *, run_id: int) -> pd.DataFrame:
    return _read(engine, RECOMMENDATION, run_id, ["customer_id", "rank"])


def read_classes(engine: Engine, *, run_id: int) -> pd.DataFrame:
    """customer_id and customer_class of a run."""
    query = select(CUSTOMER_RESULT.c.customer_id, CUSTOMER_RESULT.c.customer_class) \
        .where(CUSTOMER_RESULT.c.run_id == run_id)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=["customer_id", "customer_class"])
