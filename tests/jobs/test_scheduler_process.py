"""Real `segmint scheduler --interval 2` processes against a real database: inbox pick-up to a
published run, two schedulers at once, SIGKILL mid-run, SIGTERM shutdown."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.settings import Settings
from engine.store.locks import job_lock
from engine.store.runs import published_run_id
from jobs.tasks import pipeline
from tests.conftest import run_segmint
from tests.jobs.conftest import Schedulers, drop, history, run_count, wait_for, write_transactions

pytestmark = pytest.mark.slow


def finished(engine: Engine, job_id: str, status: str | None = None) -> list:
    return [row for row in history(engine, job_id) if row.finished_at is not None
            and (status is None or row.status == status)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_dropped_file_becomes_a_published_run_and_sigterm_exits_0(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine,
        schedulers: Schedulers, db_url: str) -> None:
    inbox = tmp_path / "inbox"
    scheduler = schedulers.start("--interval", "2")
    wait_for(lambda: finished(jobs_db, "pipeline"), what="a first pipeline tick",
             logs=schedulers.logs)
    assert published_run_id(engine=jobs_db) is None

    bad = tmp_path / "src" / "a_malformed.csv"
    bad.parent.mkdir()
    bad.write_text("when,what\nyesterday,something\n")
    drop(bad, inbox)
    drop(write_transactions(tmp_path / "src" / "b_day1.csv", seed=11), inbox)

    segment = wait_for(lambda: finished(jobs_db, "segment", "succeeded"),
                       what="a succeeded segment job", logs=schedulers.logs)
    run_id = segment[0].run_id  # type: ignore[index]
    assert run_id is not None and published_run_id(engine=jobs_db) == run_id
    assert (inbox / "processed" / "b_day1.csv").exists()
    assert (inbox / "failed" / "a_malformed.csv").exists()
    assert "missing column" in (inbox / "failed" / "a_malformed.csv.error.txt").read_text()

    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=60) == 0
    log = schedulers.logs[0].read_text()
    assert "event=scheduler_stopped" in log and "Traceback" not in log
    assert all(row.finished_at is not None for row in history(jobs_db)), \
        "a clean shutdown leaves no job 'running'"

    listed = run_segmint("--config", str(tmp_path / "config.toml"), "jobs", "--json",
                         cwd=tmp_path, env={"SEGMINT_DATABASE_URL": db_url})
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {"id", "job", "trigger", "started", "finished", "status", "error",
            "run_id"} <= set(rows[0])
    assert any(row["job"] == "segment" and row["run_id"] == run_id for row in rows)
    assert all(row["trigger"].startswith(("interval 2s", "pipeline: interval 2s"))
               for row in rows)


def test_two_schedulers_make_one_run_per_new_file(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine,
        schedulers: Schedulers) -> None:
    inbox = tmp_path / "inbox"
    schedulers.start("--interval", "2")
    schedulers.start("--interval", "2")
    for day, seed in (("day1", 21), ("day2", 22)):
        done_before = run_count(jobs_db)
        drop(write_transactions(tmp_path / "src" / f"{day}.csv", seed=seed, prefix=day), inbox)
        wait_for(lambda n=done_before: run_count(jobs_db) > n,  # type: ignore[misc]
                 what=f"the run for {day}", logs=schedulers.logs)
    # Let both schedulers tick a few more times over unchanged data.
    ticks = len(finished(jobs_db, "pipeline"))
    wait_for(lambda: len(finished(jobs_db, "pipeline")) >= ticks + 3,
             what="more ticks", logs=schedulers.logs)

    succeeded = finished(jobs_db, "segment", "succeeded")
    assert len(succeeded) == 2 == run_count(jobs_db), "exactly one run per new file"
    assert len({row.run_id for row in succeeded}) == 2
    pids = {row.details["pid"] for row in history(jobs_db, "pipeline")}
    assert len(pids) == 2, "both schedulers did tick"
    for row in history(jobs_db):  # the last tick may still be going: finished rows only
        assert row.status in ("succeeded", "skipped", "running"), (row.job_id, row.error)
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["day1.csv", "day2.csv"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sigkill_mid_run_keeps_last_good_run_and_next_tick_succeeds(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine,
        schedulers: Schedulers) -> None:
    inbox = tmp_path / "inbox"
    drop(write_transactions(tmp_path / "src" / "day1.csv", seed=31), inbox)
    first = pipeline(jobs_db, jobs_settings, trigger="test setup")
    assert first.status == "succeeded" and published_run_id(engine=jobs_db) == first.run_id

    victim = schedulers.start("--interval", "2")
    drop(write_transactions(tmp_path / "src" / "day2.csv", seed=32, customers=1500,
                            prefix="B"), inbox)
    wait_for(lambda: [r for r in history(jobs_db, "segment")
                      if r.finished_at is None and r.details.get("pid") == victim.pid],
             what="the segment job to be running", logs=schedulers.logs)
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    killed = [r for r in history(jobs_db, "segment") if r.details.get("pid") == victim.pid]
    assert killed and killed[-1].finished_at is None, "killed while the run was going"
    assert published_run_id(engine=jobs_db) == first.run_id, "the last good run stays published"

    schedulers.start("--interval", "2")
    after = wait_for(lambda: [r for r in finished(jobs_db, "segment", "succeeded")
                              if r.run_id != first.run_id],
                     what="a run after the restart", logs=schedulers.logs)
    new_run = after[0].run_id  # type: ignore[index]
    assert new_run is not None and new_run > first.run_id  # type: ignore[operator]
    assert published_run_id(engine=jobs_db) == new_run
    abandoned = [r for r in history(jobs_db, "segment") if r.id == killed[-1].id][0]
    assert abandoned.status == "failed" and abandoned.error.startswith("abandoned")
    assert "action=taken_over" in schedulers.logs[1].read_text()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sigterm_during_a_run_waits_for_it_and_exits_0(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine,
        schedulers: Schedulers) -> None:
    scheduler = schedulers.start("--interval", "2")
    drop(write_transactions(tmp_path / "src" / "big.csv", seed=41, customers=1500),
         tmp_path / "inbox")
    wait_for(lambda: [r for r in history(jobs_db, "segment") if r.finished_at is None],
             what="the segment job to be running", logs=schedulers.logs)
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=120) == 0
    segment = history(jobs_db, "segment")[-1]
    assert segment.status == "succeeded" and segment.run_id == published_run_id(engine=jobs_db)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_manual_run_refuses_while_the_segment_lock_is_held(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine, db_url: str) -> None:
    with job_lock(engine=jobs_db, name="segment", holder="scheduler elsewhere"):
        result = run_segmint("--config", str(tmp_path / "config.toml"), "run", cwd=tmp_path,
                             env={"SEGMINT_DATABASE_URL": db_url})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: job lock 'segment'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_cron_is_a_one_line_error(tmp_path: Path, db_url: str, jobs_db: Engine) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config.read_text() + '\n[scheduler.pipeline]\ncron = "0 25 * * *"\n')
    result = run_segmint("--config", str(config), "scheduler", cwd=tmp_path,
                         env={"SEGMINT_DATABASE_URL": db_url, **os.environ})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: scheduler.pipeline.cron")


def _backdate_stored_pipeline(engine: Engine, minutes: int) -> None:
    from datetime import UTC, datetime, timedelta

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    store = SQLAlchemyJobStore(engine=engine)
    job = store.lookup_job("pipeline")
    assert job is not None and job.func_ref == "jobs.tasks:run_pipeline"
    assert job.args[1] == "interval 3600s", "plain-string arguments, no settings pickled"
    job.next_run_time = datetime.now(UTC) - timedelta(minutes=minutes)
    store.update_job(job)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("grace", "runs"), [(3600, True), (60, False)],
                         ids=["within-grace", "beyond-grace"])
def test_missed_tick_runs_once_after_restart_within_the_grace_time(
        tmp_path: Path, jobs_db: Engine, schedulers: Schedulers, grace: int,
        runs: bool) -> None:
    """replace_existing=True alone would reschedule from 'now' and drop the missed tick."""
    config = tmp_path / "config.toml"
    config.write_text(config.read_text().replace(
        "[scheduler]\n", f"[scheduler]\nmisfire_grace_seconds = {grace}\n"
                         f"pipeline = {{ interval_seconds = 3600 }}\n"))
    first = schedulers.start()
    wait_for(lambda: "event=job_scheduled job=pipeline" in schedulers.logs[0].read_text(),
             what="the first scheduler to start", logs=schedulers.logs)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    assert history(jobs_db, "pipeline") == []

    _backdate_stored_pipeline(jobs_db, minutes=10)
    schedulers.start()
    if runs:
        wait_for(lambda: finished(jobs_db, "pipeline"), what="the missed tick",
                 logs=schedulers.logs)
        assert len(history(jobs_db, "pipeline")) == 1, "coalesced: one run for the missed tick"
    else:
        wait_for(lambda: "event=job_missed job=pipeline" in schedulers.logs[1].read_text(),
                 what="the missed tick to be reported", logs=schedulers.logs)
        assert history(jobs_db, "pipeline") == []
