"""Job history (one row per task execution) and the question the pipeline asks before a run:
has anything new been loaded since the last good run?
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, exists, func, select
from sqlmodel import col

from engine.models import JobHistory, SegmentationRun, SourceFile, TransactionLine
from engine.store.db import session_scope

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


def fresh_data_reason(engine: Engine) -> str | None:
    """Why a segmentation run is due, or None when it is not.

    A run is due when transaction lines exist and either no run has succeeded yet or a file
    loaded lines after the last succeeded run started (lines loaded while that run was going
    may not be in it, so they count as new).
    """
    with session_scope(engine) as session:
        if not session.scalar(select(exists().where(col(TransactionLine.id).is_not(None)))):
            return None
        last_start = session.scalar(
            select(func.max(SegmentationRun.started_at))
            .where(col(SegmentationRun.status) == "succeeded"))
        if last_start is None:
            return "no succeeded run yet"
        newer = session.scalar(
            select(func.count()).select_from(SourceFile)
            .where(col(SourceFile.loaded_at) >= last_start, col(SourceFile.lines_loaded) > 0))
        return f"{newer} file(s) loaded since the last run" if newer else None
