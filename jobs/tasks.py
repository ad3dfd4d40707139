"""What the scheduled jobs do: inbox pick-up, segmentation run, offer pass, and the pipeline
(inbox -> segment -> offers, stopping at the first failure).

Nothing here knows about APScheduler. Each step runs under its database lock (engine.store.locks)
and leaves one row of job history; a step whose lock is busy records 'skipped' and returns, which
is what makes two scheduler processes on one database safe.

The `run_*` functions at the bottom are the entry points the scheduler stores by textual reference
('jobs.tasks:run_pipeline'), with plain-string arguments, so the SQLAlchemy job store pickles a
name and two strings, never settings (secrets) or engines.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engine.dates import utc_now
from engine.errors import SegmintError, one_line
from engine.settings import Settings, load_settings
from engine.store.db import DataRefused, StoreError, check_connection
from engine.store.jobs import close_abandoned, finish_job, fresh_data_reason, start_job
from engine.store.locks import LockBusy, holder_is_dead, job_lock
from engine.values import json_safe

log = logging.getLogger(__name__)

INBOX_SUFFIXES = (".csv", ".csv.gz", ".xlsx", ".parquet")
PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")
# A file is picked up only once it has not changed for this long (it may still be copied in).
SETTLE_SECONDS = 1.0
# A file whose load fails this many times with the database reachable goes to failed/.
MAX_LOAD_ATTEMPTS = 3
ATTEMPTS_DIR = ".attempts"


@dataclass
class Outcome:
    """How a step ended: 'succeeded', 'skipped' or 'failed', with what it produced."""

    status: str
    run_id: int | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


# --- inbox -------------------------------------------------------------------------------------

def ready_files(inbox: Path, *, now: float | None = None) -> list[Path]:
    """Files in the inbox that are complete: not hidden, not partial, settled; in name order."""
    moment = time.time() if now is None else now
    ready = []
    for path in sorted(inbox.iterdir(), key=lambda p: p.name):
        name = path.name.lower()
        if not path.is_file() or name.startswith(".") or name.endswith(PARTIAL_SUFFIXES):
            continue
        if moment - path.stat().st_mtime < SETTLE_SECONDS:
            continue
        ready.append(path)
    return ready


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():  # same name dropped again: keep both
        target = folder / f"{utc_now():%Y%m%dT%H%M%S%f}-{path.name}"
    shutil.move(str(path), target)
    return target


def _reject(path: Path, failed: Path, reason: str) -> Path:
    target = _move(path, failed)
    target.with_name(target.name + ".error.txt").write_text(reason + "\n", encoding="utf-8")
    log.warning("job=inbox file=%s outcome=failed reason=%r", path.name, reason)
    return target


def _load_failed(inbox: Path, failed: Path, path: Path, reason: str) -> dict[str, Any]:
    """Counts a failed load against the file; the MAX_LOAD_ATTEMPTS-th moves it to failed/."""
    attempts = _count_attempt(inbox, path)
    if attempts < MAX_LOAD_ATTEMPTS:
        log.warning("job=inbox file=%s outcome=retry attempt=%d of %d reason=%r",
                    path.name, attempts, MAX_LOAD_ATTEMPTS, reason)
        return {"file": path.name, "outcome": "retry", "attempt": attempts, "reason": reason}
    _forget_attempts(inbox, path)
    reason = f"{path.name}: not loaded after {attempts} attempts: {reason}"
    _reject(path, failed, reason)
    return {"file": path.name, "outcome": "failed", "reason": reason}


def pick_up_inbox(engine: Engine, settings: Settings) -> Outcome:
    """Ingest every ready inbox file in name order; move each to processed/ or failed/.

    A rejected file (IngestError) goes to failed/ with <name>.error.txt holding the reason, and
    the next file is tried. A file whose load fails because of the file (the database refused
    its data, DataRefused, or an unexpected error while the database is reachable) is left for
    the next tick and the next file is tried; after MAX_LOAD_ATTEMPTS such failures it goes to
    failed/ with its last reason, so one bad file never holds up the files after it or the run.
    When the machine or the database is at fault (unreachable, locked, no scratch space: another
    StoreError, or an OSError) the step stops and fails, the file stays, and the attempt is not
    counted: a good file is never given up on because the disk was full for a while.
    """
    from engine.ingest import IngestError, ingest_file

    inbox = settings.path(settings.scheduler.inbox_dir)
    inbox.mkdir(parents=True, exist_ok=True)
    processed, failed = inbox / "processed", inbox / "failed"
    files: list[dict[str, Any]] = []
    loaded = 0
    for path in ready_files(inbox):
        if not path.name.lower().endswith(INBOX_SUFFIXES):
            _reject(path, failed, f"{path.name}: unsupported file type "
                    f"(expected {', '.join(INBOX_SUFFIXES)})")
            files.append({"file": path.name, "outcome": "failed", "reason": "unsupported type"})
            continue
        try:
            summary = ingest_file(engine, settings, path)
        except IngestError as exc:
            _forget_attempts(inbox, path)
            _reject(path, failed, str(exc))
            files.append({"file": path.name, "outcome": "failed", "reason": str(exc)})
            continue
        except (StoreError, OSError) as exc:
            if not isinstance(exc, DataRefused):
                raise  # the machine or the database, not the file: nothing counted
            files.append(_load_failed(inbox, failed, path, one_line(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - counted per file, see the docstring
            # Unreachable: StoreError fails the step, nothing counted.
            check_connection(engine=engine)
            files.append(_load_failed(inbox, failed, path, one_line(exc)))
            continue
        _forget_attempts(inbox, path)
        _move(path, processed)
        loaded += summary.loaded
        files.append({"file": path.name, "outcome": "processed", "loaded": summary.loaded,
                      "duplicates": summary.duplicates, "rejected": summary.rejected,
                      "already_loaded": summary.already_loaded})
        log.info("job=inbox file=%s outcome=processed loaded=%d duplicates=%d rejected=%d "
                 "already_loaded=%s", path.name, summary.loaded, summary.duplicates,
                 summary.rejected, summary.already_loaded)
    if not files:
        return Outcome("skipped", details={"reason": "inbox empty"})
    return Outcome("succeeded", details={
        "files": files, "loaded": loaded,
        "failed": sum(f["outcome"] == "failed" for f in files),
        "retry": sum(f["outcome"] == "retry" for f in files)})


# Failed loads are counted per file in inbox/.attempts/<name>.json (a hidden folder, so never
# picked up), for this version of the file: a new file dropped under the same name starts at 0.

def _attempts_file(inbox: Path, path: Path) -> Path:
    return inbox / ATTEMPTS_DIR / f"{path.name}.json"


def _count_attempt(inbox: Path, path: Path) -> int:
    """Record one more failed load of PATH; returns how many there have been."""
    stat = path.stat()
    version = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    record = _attempts_file(inbox, path)
    try:
        earlier = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = {}
    attempts = (earlier.get("attempts", 0) if isinstance(earlier, dict)
                and earlier.get("version") == version else 0) + 1
    record.parent.mkdir(exist_ok=True)
    record.write_text(json.dumps({"version": version, "attempts": attempts}), encoding="utf-8")
    return attempts


def _forget_attempts(inbox: Path, path: Path) -> None:
    _attempts_file(inbox, path).unlink(missing_ok=True)


# --- segmentation and offers -------------------------------------------------------------------

def segment_if_due(engine: Engine, settings: Settings) -> Outcome:
    """Run the engine when lines were loaded since the last succeeded run (or none exists)."""
    from engine.pipeline import execute_run

    reason = fresh_data_reason(engine=engine)
    if reason is None:
        return Outcome("skipped", details={"reason": "no new lines since the last run"})
    run_id = execute_run(engine, settings)
    return Outcome("succeeded", run_id=run_id, details={"reason": reason})


def offer_pass(engine: Engine, settings: Settings) -> Outcome:
    """One offer pass over the latest run (dry run without Twilio credentials)."""
    if not settings.notifications.enabled:
        return Outcome("skipped", details={"reason": "offers disabled by config "
                                                     "(notifications.enabled = false)"})
    try:
        from notifications.offers import send_offers
    except ImportError:
        return Outcome("skipped", details={"reason": "offers unavailable: the notifications "
                                                     "module is not installed"})
    summary = send_offers(engine, settings)
    # Shallow on purpose: dataclasses.asdict rebuilds a Counter from (key, value) pairs, which
    # counts the pairs. Message previews stay out of the history.
    details = ({f.name: getattr(summary, f.name) for f in dataclasses.fields(summary)
                if f.name != "previews"} if dataclasses.is_dataclass(summary)
               else {"summary": str(summary)})
    return Outcome("succeeded", details=json_safe(details))


# --- recording ---------------------------------------------------------------------------------

def close_abandoned_jobs(engine: Engine) -> int:
    """Mark failed the 'running' history rows whose process on this host is gone (a scheduler
    killed mid-job); returns how many. Rows of live processes and of other hosts stay."""
    closed = close_abandoned(engine=engine, is_dead=lambda details: holder_is_dead(
        f"{details.get('host', '')}:{details.get('pid', '')}:job"))
    if closed:
        log.warning("event=abandoned_jobs_closed count=%d", closed)
    return closed


def run_recorded(engine: Engine, settings: Settings, *, job_id: str, trigger: str,
                 step: Callable[[Engine, Settings], Outcome], lock: str | None = None) -> Outcome:
    """Run STEP under the lock named LOCK (default: the job id) and record it in job history.

    Rows left 'running' by a killed process are closed first, on every job: another scheduler
    on the database may run for months without restarting.
    """
    close_abandoned_jobs(engine)
    history_id = start_job(engine=engine, job_id=job_id, trigger=trigger,
                           details={"host": socket.gethostname(), "pid": os.getpid()})
    log.info("job=%s trigger=%r history_id=%d status=running", job_id, trigger, history_id)
    try:
        with job_lock(engine=engine, name=lock or job_id, holder=f"job {job_id}",
                      ttl_seconds=settings.scheduler.lock_ttl_seconds):
            outcome = step(engine, settings)
    except LockBusy as exc:
        outcome = Outcome("skipped", details={"reason": str(exc)})
    except SegmintError as exc:
        outcome = Outcome("failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded, logged with traceback, never re-raised
        log.exception("job=%s history_id=%d unexpected error", job_id, history_id)
        outcome = Outcome("failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    finish_job(engine=engine, history_id=history_id, status=outcome.status, error=outcome.error,
               run_id=outcome.run_id, details=json_safe(outcome.details))
    log.info("job=%s history_id=%d status=%s run_id=%s%s", job_id, history_id, outcome.status,
             outcome.run_id, f" error={outcome.error!r}" if outcome.error else
             f" reason={outcome.details['reason']!r}" if "reason" in outcome.details else "")
    return outcome


def pipeline(engine: Engine, settings: Settings, *, trigger: str) -> Outcome:
    """inbox -> segment -> offers, each recorded, stopping at the first failed step."""
    steps: list[tuple[str, Callable[[Engine, Settings], Outcome]]] = [
        ("inbox", pick_up_inbox), ("segment", segment_if_due), ("offers", offer_pass)]

    def run_steps(engine: Engine, settings: Settings) -> Outcome:
        results: dict[str, str] = {}
        run_id = None
        for name, step in steps:
            outcome = run_recorded(engine, settings, job_id=name, trigger=f"pipeline: {trigger}",
                                   step=step)
            results[name] = outcome.status
            run_id = outcome.run_id or run_id
            if outcome.status == "failed":
                return Outcome("failed", run_id=run_id, error=f"{name}: {outcome.error}",
                               details={"steps": results})
        return Outcome("succeeded", run_id=run_id, details={"steps": results})

    return run_recorded(engine, settings, job_id="pipeline", trigger=trigger, step=run_steps)


# --- entry points the scheduler stores by name --------------------------------------------------

def _open(config_path: str | None) -> tuple[Engine, Settings]:
    from engine.store import get_engine, require_schema

    settings = load_settings(config_path)
    engine = get_engine(settings.database_url, settings.database.echo)
    require_schema(engine=engine)
    return engine, settings


def _entry(job_id: str, config_path: str | None, trigger: str,
           body: Callable[[Engine, Settings], Outcome]) -> None:
    try:
        engine, settings = _open(config_path)
        body(engine, settings)
    except SegmintError as exc:  # before any history could be written (config, database)
        log.error("job=%s trigger=%r status=failed error=%r", job_id, trigger, str(exc))


def run_pipeline(config_path: str | None, trigger: str = "manual") -> None:
    _entry("pipeline", config_path, trigger,
           lambda engine, settings: pipeline(engine, settings, trigger=trigger))


def run_inbox(config_path: str | None, trigger: str = "manual") -> None:
    _entry("inbox", config_path, trigger, lambda engine, settings: run_recorded(
        engine, settings, job_id="inbox", trigger=trigger, step=pick_up_inbox))
