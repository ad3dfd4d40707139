"""The scheduler process: wires triggers from settings.scheduler to the tasks in jobs.tasks.

APScheduler 3.x choices, and the traps they avoid:
- Jobs are stored in the project database (SQLAlchemyJobStore, table apscheduler_jobs) by
  textual reference ('jobs.tasks:run_pipeline') with plain-string arguments, so the pickled job
  holds no settings, secrets or engines and survives code reloads.
- Stable ids with replace_existing=True, so restarts update the job instead of adding copies.
  replace_existing alone recomputes next_run_time from "now" and silently drops a run missed
  while the scheduler was down (agronholm/apscheduler#696); when the stored job has the same
  trigger we keep its pending fire time, and coalesce=True plus misfire_grace_time decide
  whether that missed run still happens (once).
- APScheduler 3 does not coordinate schedulers sharing a job store: both may fire the same tick.
  That is what the database locks in the tasks are for (a busy lock records 'skipped').
- CronTrigger.from_crontab treats day-of-week 0 as Monday (cron: Sunday) and refuses ranges
  starting at Sunday ('sun-tue'); the day-of-week field is expanded into day names first
  (crontab_weekdays), so it means what it means to cron.
- The scheduler runs only in this process (`segmint scheduler`), never in web workers.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import SQLAlchemyError

from engine.errors import SegmintError
from engine.settings import JobSpec, Settings
from engine.store import describe
from jobs.tasks import close_abandoned_jobs

log = logging.getLogger(__name__)

# Job id -> task entry point (textual reference, see module docstring).
TASKS = {
    "pipeline": "jobs.tasks:run_pipeline",
    "inbox": "jobs.tasks:run_inbox",
}
CRON_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


class SchedulerConfigError(SegmintError):
    """A scheduler setting cannot be turned into a trigger; the message names the setting."""


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    func: str
    trigger: BaseTrigger
    label: str  # human form of the trigger, recorded in job history


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field as the day names it means, for APScheduler.

    Cron's meaning (crontab(5), as cronie reads it): numbers 0-7 with 0 and 7 both Sunday, or
    names sun..sat; lists, ranges and steps, where '*' is 0-7 and a lone start with a step runs
    to 7 ('1/2' = 1-7/2 = mon,wed,fri,sun). A range whose start comes after its end ('fri-mon',
    '5-1') wraps round the week. APScheduler counts from Monday and refuses a range starting at
    Sunday ('sun-tue'), so the field is expanded here into a plain list of names ('*' when it
    means every day). Raises ValueError naming the bad part.
    """
    days: set[int] = set()
    for token in field.lower().split(","):
        span, slash, step_text = token.partition("/")
        step = _weekday_step(step_text, token) if slash else 1
        if span == "*":
            first, last = 0, 7
        elif "-" in span:
            low, _, high = span.partition("-")
            first, last = _weekday_number(low, token), _weekday_number(high, token)
            if last < first:
                last += 7
        else:
            first = _weekday_number(span, token)
            last = 7 if slash else first
        days.update(day % 7 for day in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(CRON_WEEKDAYS[day] for day in sorted(days))


def _weekday_number(value: str, token: str) -> int:
    if value.isdigit() and int(value) <= 7:
        return int(value)
    if value in CRON_WEEKDAYS:
        return CRON_WEEKDAYS.index(value)
    raise ValueError(f"day of week {token!r}: {value!r} is not 0-7 or a day name (sun..sat)")


def _weekday_step(value: str, token: str) -> int:
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise ValueError(f"day of week {token!r}: step {value!r} is not a whole number above 0")


def make_trigger(spec: JobSpec, *, key: str, timezone: ZoneInfo) -> tuple[BaseTrigger, str]:
    """The trigger a [scheduler] job entry describes, and its label."""
    if spec.interval_seconds:
        return (IntervalTrigger(seconds=spec.interval_seconds, timezone=timezone),
                f"interval {spec.interval_seconds}s")
    fields = spec.cron.split()
    try:
        if len(fields) != 5:
            raise ValueError(f"expected 5 fields, got {len(fields)}")
        fields[4] = crontab_weekdays(fields[4])
        trigger = CronTrigger.from_crontab(" ".join(fields), timezone=timezone)
    except ValueError as exc:
        raise SchedulerConfigError(
            f"scheduler.{key}.cron: {spec.cron!r} is not a crontab expression: {exc}") from None
    return trigger, f"cron {spec.cron} {timezone.key}"


def plan_jobs(settings: Settings, *, interval: int | None = None) -> list[PlannedJob]:
    """The enabled jobs and their triggers; --interval replaces only the pipeline's trigger."""
    timezone = scheduler_timezone(settings)
    specs = {"pipeline": settings.scheduler.pipeline, "inbox": settings.scheduler.inbox}
    planned = []
    for job_id, spec in specs.items():
        if job_id == "pipeline" and interval is not None:
            trigger, label = (IntervalTrigger(seconds=interval, timezone=timezone),
                              f"interval {interval}s (--interval)")
        elif not spec.enabled:
            continue
        else:
            trigger, label = make_trigger(spec, key=job_id, timezone=timezone)
        planned.append(PlannedJob(job_id, TASKS[job_id], trigger, label))
    return planned


def scheduler_timezone(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.scheduler.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SchedulerConfigError(
            f"scheduler.timezone: {settings.scheduler.timezone!r} is not a known time zone "
            f"(e.g. 'Europe/London', 'UTC')") from None


def _trigger_key(trigger: BaseTrigger) -> str:
    # IntervalTrigger's repr carries its start date, which changes on every start; str does not.
    return f"{type(trigger).__name__}:{trigger}:{getattr(trigger, 'timezone', '')}"


def _ensure_store_table(store: SQLAlchemyJobStore, engine: Engine) -> None:
    # Two schedulers starting at once race on CREATE TABLE (PostgreSQL raises on the loser);
    # the second attempt finds the table.
    for attempt in range(3):
        try:
            store.jobs_t.create(engine, checkfirst=True)
            return
        except SQLAlchemyError:
            if attempt == 2:
                raise
            time.sleep(0.5)


def _pending_fire_time(store: SQLAlchemyJobStore, planned: PlannedJob) -> Any:
    """The stored job's next run time when its trigger is unchanged (see module docstring)."""
    try:
        existing = store.lookup_job(planned.job_id)
    except Exception as exc:  # noqa: BLE001 - an unreadable stored job is simply replaced
        log.warning("event=stored_job_unreadable job=%s error=%r", planned.job_id, str(exc))
        return None
    if existing is None or existing.next_run_time is None:
        return None
    if _trigger_key(existing.trigger) != _trigger_key(planned.trigger):
        return None
    return existing.next_run_time


def build_scheduler(settings: Settings, engine: Engine, *, config_path: str | None,
                    interval: int | None = None) -> BlockingScheduler:
    """A configured BlockingScheduler with the planned jobs added (not started)."""
    planned = plan_jobs(settings, interval=interval)
    store = SQLAlchemyJobStore(engine=engine)
    _ensure_store_table(store, engine)
    scheduler = BlockingScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": settings.scheduler.misfire_grace_seconds},
        timezone=scheduler_timezone(settings),
    )
    wanted = {job.job_id for job in planned}
    with engine.begin() as connection:
        stale = [job_id for job_id in connection.execute(select(store.jobs_t.c.id)).scalars()
                 if job_id not in wanted]
        if stale:
            connection.execute(delete(store.jobs_t).where(store.jobs_t.c.id.in_(stale)))
            log.info("event=jobs_removed jobs=%s reason=disabled_or_unknown", ",".join(stale))
    for job in planned:
        extra: dict[str, Any] = {}
        pending = _pending_fire_time(store, job)
        if pending is not None:
            extra["next_run_time"] = pending
        scheduler.add_job(job.func, job.trigger, args=[config_path, job.label], id=job.job_id,
                          name=job.job_id, replace_existing=True, **extra)
    scheduler.add_listener(_log_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
                           | EVENT_JOB_ERROR)
    scheduler.add_listener(lambda event: _log_started(scheduler, planned, event),
                           EVENT_SCHEDULER_STARTED)
    return scheduler


def _log_event(event: JobEvent) -> None:
    kind = {EVENT_JOB_MISSED: "job_missed", EVENT_JOB_MAX_INSTANCES: "tick_skipped_still_running",
            EVENT_JOB_ERROR: "job_error"}.get(event.code, str(event.code))
    # Missed/error events carry one scheduled time, max-instances events a list of them.
    times = getattr(event, "scheduled_run_times", None) or [
        getattr(event, "scheduled_run_time", None)]
    error = getattr(event, "exception", None)
    log.warning("event=%s job=%s scheduled=%s%s", kind, event.job_id,
                ",".join(t.isoformat() for t in times if t is not None) or "-",
                f" error={error!r}" if error else "")


def _log_started(scheduler: BlockingScheduler, planned: list[PlannedJob],
                 _event: SchedulerEvent) -> None:
    for job in planned:
        stored = scheduler.get_job(job.job_id)
        next_run = stored.next_run_time.isoformat() if stored and stored.next_run_time else "-"
        log.info("event=job_scheduled job=%s trigger=%r next_run=%s", job.job_id, job.label,
                 next_run)


class _StopRequested(Exception):
    """Raised from the SIGTERM/SIGINT handler to leave BlockingScheduler.start()."""


def run_scheduler(settings: Settings, engine: Engine, *, config_path: str | None,
                  interval: int | None = None) -> int:
    """Run until SIGTERM or SIGINT; wait for running jobs; return the exit status (0)."""
    if interval is not None and interval < 1:
        raise SchedulerConfigError(f"--interval: {interval} must be at least 1 second")
    config = str(Path(config_path).resolve()) if config_path else None
    close_abandoned_jobs(engine)  # and again at the start of every job (jobs.tasks)
    scheduler = build_scheduler(settings, engine, config_path=config, interval=interval)
    stopping: list[str] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stopping:
            log.info("event=stop_already_requested signal=%s", name)
            return
        stopping.append(name)
        raise _StopRequested(name)

    log.info("event=scheduler_starting database=%s timezone=%s misfire_grace_seconds=%d",
             describe(str(engine.url)), settings.scheduler.timezone,
             settings.scheduler.misfire_grace_seconds)
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, request_stop)
        scheduler.start()
    except _StopRequested:
        pass
    finally:
        if scheduler.running:
            log.info("event=scheduler_stopping signal=%s waiting_for=running_jobs",
                     stopping[0] if stopping else "-")
            scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("event=scheduler_stopped")
    return 0
