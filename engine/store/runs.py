"""Segmentation runs: their lifecycle ('running' -> 'succeeded' | 'failed'), the published run
and the listing the CLI and the dashboard show.

A run row is created 'running' and committed at once; its results (engine.store.results) and its
status 'succeeded' are written in ONE transaction, so readers see all of a run or none of it.

The published run is defined here once, for the CLI, the dashboard, the offers and the
scheduler's fresh-data rule: the succeeded run with the highest id. 'running' and 'failed' rows
never are, whatever their age.
"""

from __future__ import annotations

import socket
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Select, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from engine.columns import RUN_COLUMNS
from engine.dates import utc_now
from engine.store.db import StoreError, database_error
from engine.store.locks import process_alive
from engine.store.tables import (
    PROFILES,
    RECOMMENDATIONS,
    RESULTS,
    RULES,
    RUN_GROUP_PRODUCTS,
    RUN_MONTHS,
    RUN_PRODUCTS,
    RUNS,
    read_frame,
)

if TYPE_CHECKING:
    import pandas as pd

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


def published_run_query() -> Select[Any]:
    """The published run's row (every column): the succeeded run with the highest id."""
    return (select(RUNS).where(RUNS.c.status == SUCCEEDED)
            .order_by(RUNS.c.id.desc()).limit(1))


def published_run(*, engine: Engine | Connection) -> dict[str, Any] | None:
    """The published run as a dict, or None before the first success."""
    if isinstance(engine, Connection):
        row = engine.execute(published_run_query()).mappings().first()
    else:
        with engine.connect() as connection:
            row = connection.execute(published_run_query()).mappings().first()
    return dict(row) if row is not None else None


def published_run_id(*, engine: Engine | Connection) -> int | None:
    """The published run's id, or None before the first success."""
    run = published_run(engine=engine)
    return int(run["id"]) if run is not None else None


def create_run(*, engine: Engine, params: dict[str, Any], as_of: date | None,
               since: date | None, until: date | None, k_mode: str, seed: int) -> int:
    """A new run row in status 'running', committed at once; returns its id."""
    try:
        with engine.begin() as connection:
            result = connection.execute(insert(RUNS).values(
                status=RUNNING, started_at=utc_now(), as_of=as_of, since=since, until=until,
                k_mode=k_mode, seed=seed, params=params, diagnostics={}))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None


def mark_failed(*, engine: Engine, run_id: int, error: str) -> None:
    """Status 'failed' with the error; results of the run (if any slipped in) are removed."""
    from engine.store import clv as clv_store

    with engine.begin() as connection:
        clv_store.remove(connection=connection, run_id=run_id)
        for table in (RECOMMENDATIONS, RULES, RUN_GROUP_PRODUCTS, RUN_PRODUCTS, RUN_MONTHS,
                      PROFILES, RESULTS):
            connection.execute(delete(table).where(table.c.run_id == run_id))
        connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(
            status=FAILED, finished_at=utc_now(), error=error[:2000]))


def _process_gone(pid: Any) -> bool:
    return isinstance(pid, int) and pid > 0 and not process_alive(pid)


def fail_abandoned_runs(*, engine: Engine) -> list[int]:
    """Marks failed the 'running' rows whose process (on this host) no longer exists, e.g. a
    run killed with SIGKILL. Rows of live processes and of other hosts are left alone."""
    host = socket.gethostname()
    with engine.connect() as connection:
        rows = connection.execute(select(RUNS.c.id, RUNS.c.params)
                                  .where(RUNS.c.status == RUNNING))
        abandoned = [row.id for row in rows
                     if (row.params or {}).get("host") == host
                     and _process_gone((row.params or {}).get("pid"))]
    for run_id in abandoned:
        mark_failed(engine=engine, run_id=run_id, error="abandoned: the process running it "
                                                        "ended without finishing (killed?)")
    return abandoned


def _listing(status: str | None, limit: int | None) -> Select[Any]:
    """The statement of list_runs and list_run_rows."""
    statement = select(*[RUNS.c[name] for name in RUN_COLUMNS]).order_by(RUNS.c.id.desc())
    if status is not None:
        statement = statement.where(RUNS.c.status == status)
    if limit is not None:
        statement = statement.limit(limit)
    return statement


def list_runs(*, engine: Engine, status: str | None = None,
              limit: int | None = None) -> pd.DataFrame:
    """Runs newest first (RUN_COLUMNS): every run, or those of one status; at most `limit`."""
    return read_frame(engine, _listing(status, limit), RUN_COLUMNS)


def list_run_rows(*, engine: Engine) -> list[dict[str, Any]]:
    """Every run newest first as plain dicts of RUN_COLUMNS (None where empty): `list_runs`
    without pandas, for `segmint runs`, which answers without importing it."""
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(_listing(None, None)).mappings()]


def get_run(*, engine: Engine, run_id: int) -> dict[str, Any] | None:
    """The run row as a dict (with params and diagnostics), or None."""
    with engine.connect() as connection:
        row = connection.execute(select(RUNS).where(RUNS.c.id == run_id)).mappings().first()
    return dict(row) if row is not None else None


def resolve_run(*, engine: Engine, ref: str | int | None) -> int:
    """A run reference from the command line: an id or 'latest' (= published); the run must
    have succeeded."""
    if ref is None or str(ref).lower() == "latest":
        run_id = published_run_id(engine=engine)
        if run_id is None:
            raise StoreError("no succeeded run yet: run `segmint run` first")
        return run_id
    try:
        run_id = int(ref)
    except ValueError:
        raise StoreError(f"run {ref!r} is not a run id or 'latest'") from None
    run = get_run(engine=engine, run_id=run_id)
    if run is None:
        raise StoreError(f"run {run_id} does not exist")
    if run["status"] != SUCCEEDED:
        raise StoreError(f"run {run_id} has status {run['status']}; it has no results")
    return run_id
