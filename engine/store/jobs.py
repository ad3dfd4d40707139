"""Job history (one row per task execution) and the question the pipeline asks before a run:
has anything new been loaded since the published run read the lines?
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Row, Select, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from engine.dates import utc_now
from engine.store.db import database_error
from engine.store.runs import published_run
from engine.store.tables import JOBS, SOURCE_FILES, read_frame

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("running", "succeeded", "failed", "skipped")
HISTORY_COLUMNS = ["id", "job_id", "trigger", "started_at", "finished_at", "status", "run_id",
                   "error"]


def start_job(*, engine: Engine, job_id: str, trigger: str,
              details: dict[str, Any] | None = None) -> int:
    """Record that a task started; returns the history row id to pass to finish_job."""
    with engine.begin() as connection:
        key = connection.execute(insert(JOBS).values(
            job_id=job_id, trigger=trigger[:128], started_at=utc_now(), status="running",
            details=dict(details or {}))).inserted_primary_key
    assert key is not None
    return int(key[0])


def finish_job(*, engine: Engine, history_id: int, status: str, error: str | None = None,
               run_id: int | None = None, details: dict[str, Any] | None = None) -> None:
    """Record the outcome of a task; details are merged into what start_job stored."""
    if status not in STATUSES or status == "running":
        raise ValueError(f"unknown final job status {status!r}")
    with engine.begin() as connection:
        stored = connection.execute(select(JOBS.c.details).where(JOBS.c.id == history_id)).first()
        if stored is None:
            raise ValueError(f"job history row {history_id} does not exist")
        connection.execute(update(JOBS).where(JOBS.c.id == history_id).values(
            finished_at=utc_now(), status=status, error=error, run_id=run_id,
            details={**(stored.details or {}), **(details or {})}))


def _history(limit: int) -> Select[Any]:
    """History rows, newest started first."""
    return select(JOBS).order_by(JOBS.c.started_at.desc(), JOBS.c.id.desc()).limit(limit)


def list_jobs(*, engine: Engine, limit: int = 100, job_id: str | None = None,
              status: str | None = None) -> list[Row[Any]]:
    """History rows (every column), newest started first."""
    query = _history(limit)
    if job_id is not None:
        query = query.where(JOBS.c.job_id == job_id)
    if status is not None:
        query = query.where(JOBS.c.status == status)
    with engine.connect() as connection:
        return list(connection.execute(query).all())


def job_history(*, engine: Engine, limit: int = 200) -> pd.DataFrame:
    """The dashboard's Jobs table: HISTORY_COLUMNS of the newest rows."""
    query = _history(limit).with_only_columns(*(JOBS.c[name] for name in HISTORY_COLUMNS))
    return read_frame(engine, query, HISTORY_COLUMNS)


def close_abandoned(*, engine: Engine, is_dead: Callable[[dict[str, Any]], bool]) -> int:
    """Mark 'running' rows whose process is gone (is_dead(details)) as failed; returns how many."""
    with engine.begin() as connection:
        rows = connection.execute(select(JOBS.c.id, JOBS.c.details)
                                  .where(JOBS.c.status == "running")).all()
        dead = [row.id for row in rows if is_dead(row.details or {})]
        if dead:
            connection.execute(update(JOBS).where(JOBS.c.id.in_(dead)).values(
                status="failed", finished_at=utc_now(),
                error="abandoned: the process running it exited before it finished"))
    return len(dead)


def lines_seen(*, engine: Engine) -> dict[str, int]:
    """How many transaction lines are committed and the newest file that added some: a run
    reads this just before it records itself and loads the lines, and keeps it in its params
    ('lines_seen'). From source_file (one row per file, written in the same transaction as its
    lines), not by counting transaction_line, which costs a scan of millions of rows.

    Lines committed in between are in the run but not in the count, which at worst makes one
    more run; never one too few. (The load itself reads in another connection or process.)
    """
    try:
        with engine.connect() as connection:
            return _lines_seen(connection)
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None


def _lines_seen(connection: Connection) -> dict[str, int]:
    lines, last_file = connection.execute(
        select(func.coalesce(func.sum(SOURCE_FILES.c.lines_loaded), 0),
               func.max(SOURCE_FILES.c.id))
        .where(SOURCE_FILES.c.lines_loaded > 0)).one()
    return {"lines": int(lines), "last_file": int(last_file or 0)}


def fresh_data_reason(*, engine: Engine) -> str | None:
    """Why a segmentation run is due, or None when it is not.

    A run is due when transaction lines exist and either no run has succeeded yet or the lines
    differ from what the published run saw (its params' 'lines_seen', see lines_seen). A
    file's load time is not enough: a load that began before a run started but committed after
    the run read the lines is not in that run. Runs recorded before 'lines_seen' existed fall
    back to that rule (a file loaded after the run started).
    """
    with engine.connect() as connection:
        now = _lines_seen(connection)
        if not now["lines"]:
            return None
        last = published_run(engine=connection)
        if last is None:
            return "no succeeded run yet"
        seen = (last["params"] or {}).get("lines_seen")
        if isinstance(seen, dict) and set(now) <= set(seen):
            if now["lines"] > seen["lines"]:
                return f"{now['lines'] - seen['lines']} line(s) added since the last run read them"
            if now != {key: seen[key] for key in now}:
                return "the lines changed since the last run read them"
            return None
        newer = connection.execute(
            select(func.count()).select_from(SOURCE_FILES)
            .where(SOURCE_FILES.c.loaded_at >= last["started_at"],
                   SOURCE_FILES.c.lines_loaded > 0)).scalar_one()
        return f"{newer} file(s) loaded since the last run" if newer else None
