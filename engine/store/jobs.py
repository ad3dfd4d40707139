"""Job history (one row per task execution) and the question the pipeline asks before a run:
has anything new been loaded since the last good run?
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from engine.models import JobHistory, SegmentationRun, SourceFile
from engine.store.db import database_error, session_scope

STATUSES = ("running", "succeeded", "failed", "skipped")


def start_job(engine: Engine, *, job_id: str, trigger: str,
              details: dict[str, Any] | None = None) -> int:
    """Record that a task started; returns the history row id to pass to finish_job."""
    row = JobHistory(job_id=job_id, trigger=trigger[:128], started_at=datetime.now(UTC),
                     status="running", details=dict(details or {}))
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def finish_job(engine: Engine, *, history_id: int, status: str, error: str | None = None,
               run_id: int | None = None, details: dict[str, Any] | None = None) -> None:
    """Record the outcome of a task; details are merged into what start_job stored."""
    if status not in STATUSES or status == "running":
        raise ValueError(f"unknown final job status {status!r}")
    with session_scope(engine) as session:
        row = session.get(JobHistory, history_id)
        if row is None:
            raise ValueError(f"job history row {history_id} does not exist")
        row.finished_at = datetime.now(UTC)
        row.status = status
        row.error = error
        row.run_id = run_id
        row.details = {**row.details, **(details or {})}
        session.add(row)


def list_jobs(engine: Engine, *, limit: int = 100, job_id: str | None = None,
              status: str | None = None) -> list[JobHistory]:
    """History rows, newest first."""
    query = select(JobHistory).order_by(col(JobHistory.id).desc()).limit(limit)
    if job_id is not None:
        query = query.where(col(JobHistory.job_id) == job_id)
    if status is not None:
        query = query.where(col(JobHistory.status) == status)
    with session_scope(engine) as session:
        return list(session.scalars(query))


def close_abandoned(engine: Engine, *, is_dead: Callable[[dict[str, Any]], bool]) -> int:
    """Mark 'running' rows whose process is gone (is_dead(details)) as failed; returns how many."""
    closed = 0
    with session_scope(engine) as session:
        rows = session.scalars(select(JobHistory).where(col(JobHistory.status) == "running"))
        for row in rows:
            if is_dead(row.details):
                row.status = "failed"
                row.finished_at = datetime.now(UTC)
                row.error = "abandoned: the process running it exited before it finished"
                session.add(row)
                closed += 1
    return closed


def lines_seen(engine: Engine) -> dict[str, int]:
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
        select(func.coalesce(func.sum(SourceFile.lines_loaded), 0),  # type: ignore[arg-type]
               func.max(SourceFile.id))  # type: ignore[arg-type]
        .where(col(SourceFile.lines_loaded) > 0)).one()
    return {"lines": int(lines), "last_file": int(last_file or 0)}


def fresh_data_reason(engine: Engine) -> str | None:
    """Why a segmentation run is due, or None when it is not.

    A run is due when transaction lines exist and either no run has succeeded yet or the lines
    differ from what the last succeeded run saw (its params' 'lines_seen', see lines_seen). A
    file's load time is not enough: a load that began before a run started but committed after
    the run read the lines is not in that run. Runs recorded before 'lines_seen' existed fall
    back to that rule (a file loaded after the run started).
    """
    with engine.connect() as connection:
        now = _lines_seen(connection)
        if not now["lines"]:
            return None
        last = connection.execute(
            select(col(SegmentationRun.started_at), col(SegmentationRun.params))
            .where(col(SegmentationRun.status) == "succeeded")
            .order_by(col(SegmentationRun.started_at).desc(), col(SegmentationRun.id).desc())
            .limit(1)).first()
        if last is None:
            return "no succeeded run yet"
        seen = (last.params or {}).get("lines_seen")
        if isinstance(seen, dict) and set(now) <= set(seen):
            if now["lines"] > seen["lines"]:
                return f"{now['lines'] - seen['lines']} line(s) added since the last run read them"
            if now != {key: seen[key] for key in now}:
                return "the lines changed since the last run read them"
            return None
        newer = connection.execute(
            select(func.count()).select_from(SourceFile)
            .where(col(SourceFile.loaded_at) >= last.started_at,
                   col(SourceFile.lines_loaded) > 0)).scalar_one()
        return f"{newer} file(s) loaded since the last run" if newer else None
