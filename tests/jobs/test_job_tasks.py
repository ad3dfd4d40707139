"""The tasks without a scheduler: inbox pick-up, the fresh-data rule, job history, pipeline
order and stopping at the first failure. Real database (SQLite and PostgreSQL), real files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.ingest import ingest_file
from engine.ingest.presets import choose_preset
from engine.ingest.readers import read_file
from engine.ingest.transactions import stage_lines
from engine.settings import Settings
from engine.store.db import StoreError
from engine.store.jobs import fresh_data_reason, list_jobs
from engine.store.lines_read import load_lines
from engine.store.lines_write import write_files
from engine.store.locks import job_lock
from engine.store.runs import get_run
from jobs.tasks import (
    Outcome,
    offer_pass,
    pick_up_inbox,
    pipeline,
    ready_files,
    run_recorded,
    segment_if_due,
)
from tests.conftest import REPO
from tests.jobs.conftest import drop, history, run_count, write_transactions


def test_bad_file_goes_to_failed_with_reason_and_later_files_still_load(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine) -> None:
    inbox = tmp_path / "inbox"
    bad = tmp_path / "src" / "a_bad.csv"
    bad.parent.mkdir()
    bad.write_text("x,y\n1,2\n")
    drop(bad, inbox)
    drop(write_transactions(tmp_path / "src" / "b_good.csv", seed=1, customers=20), inbox)
    (inbox / "c_upload.csv.part").write_text("still uploading")

    outcome = pick_up_inbox(jobs_db, jobs_settings)

    assert outcome.status == "succeeded"
    assert [(f["file"], f["outcome"]) for f in outcome.details["files"]] == [
        ("a_bad.csv", "failed"), ("b_good.csv", "processed")]
    assert (inbox / "failed" / "a_bad.csv").exists()
    reason = (inbox / "failed" / "a_bad.csv.error.txt").read_text()
    assert "missing column" in reason and "customer_id" in reason
    assert (inbox / "processed" / "b_good.csv").exists()
    assert outcome.details["loaded"] > 0
    assert sorted(p.name for p in inbox.iterdir()) == ["c_upload.csv.part", "failed",
                                                        "processed"]


def test_unsupported_and_unsettled_files(tmp_path: Path, jobs_settings: Settings,
                                         jobs_db: Engine) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notes.txt").write_text("hello")
    past = time.time() - 5
    os.utime(inbox / "notes.txt", (past, past))
    fresh = write_transactions(inbox / "just-arriving.csv", seed=2, customers=5)
    assert ready_files(inbox) == [inbox / "notes.txt"], "a file still changing is left alone"

    outcome = pick_up_inbox(jobs_db, jobs_settings)

    assert "unsupported file type" in (inbox / "failed" / "notes.txt.error.txt").read_text()
    assert fresh.exists() and outcome.details["failed"] == 1


def test_same_name_dropped_twice_keeps_both(tmp_path: Path, jobs_settings: Settings,
                                            jobs_db: Engine) -> None:
    inbox = tmp_path / "inbox"
    source = write_transactions(tmp_path / "src" / "day.csv", seed=3, customers=10)
    drop(source, inbox)
    pick_up_inbox(jobs_db, jobs_settings)
    drop(source, inbox)
    second = pick_up_inbox(jobs_db, jobs_settings)
    assert second.details["files"][0]["already_loaded"] is True
    assert len(list((inbox / "processed").iterdir())) == 2


def test_empty_inbox_is_skipped(jobs_settings: Settings, jobs_db: Engine) -> None:
    assert pick_up_inbox(jobs_db, jobs_settings).status == "skipped"


def test_fresh_data_rule(tmp_path: Path, jobs_settings: Settings, jobs_db: Engine) -> None:
    assert fresh_data_reason(engine=jobs_db) is None, "no lines: nothing to run"
    ingest_file(jobs_db, jobs_settings, write_transactions(tmp_path / "one.csv", seed=4))
    assert fresh_data_reason(engine=jobs_db) == "no succeeded run yet"

    outcome = pipeline(jobs_db, jobs_settings, trigger="test")
    assert outcome.status == "succeeded" and outcome.run_id is not None
    assert fresh_data_reason(engine=jobs_db) is None

    again = pipeline(jobs_db, jobs_settings, trigger="test")
    assert again.status == "succeeded" and again.run_id is None
    segments = history(jobs_db, "segment")
    assert [row.status for row in segments] == ["succeeded", "skipped"]
    assert segments[1].details["reason"] == "no new lines since the last run"

    ingest_file(jobs_db, jobs_settings, write_transactions(tmp_path / "two.csv", seed=5,
                                                            prefix="B"))
    reason = fresh_data_reason(engine=jobs_db)
    assert reason is not None and reason.endswith(" line(s) added since the last run read them")
    assert run_count(jobs_db) == 1


def test_pipeline_records_each_step_in_order(tmp_path: Path, jobs_settings: Settings,
                                             jobs_db: Engine) -> None:
    drop(write_transactions(tmp_path / "src" / "day1.csv", seed=6), tmp_path / "inbox")
    outcome = pipeline(jobs_db, jobs_settings, trigger="cron 0 2 * * *")
    rows = history(jobs_db)
    assert [row.job_id for row in rows] == ["pipeline", "inbox", "segment", "offers"]
    by_job = {row.job_id: row for row in rows}
    assert by_job["pipeline"].trigger == "cron 0 2 * * *"
    assert by_job["segment"].trigger == "pipeline: cron 0 2 * * *"
    assert by_job["pipeline"].run_id == by_job["segment"].run_id == outcome.run_id
    assert by_job["offers"].status == "skipped"
    assert "disabled by config" in by_job["offers"].details["reason"]
    assert all(row.finished_at is not None for row in rows)
    assert by_job["pipeline"].details["steps"] == {"inbox": "succeeded",
                                                    "segment": "succeeded",
                                                    "offers": "skipped"}
    listed = list_jobs(engine=jobs_db, limit=2)
    assert [row.job_id for row in listed] == ["offers", "segment"], "newest started first"


def test_pipeline_stops_at_the_first_failure(tmp_path: Path, jobs_settings: Settings,
                                             jobs_db: Engine) -> None:
    # Lines without any customer id load fine but give the engine nothing to segment.
    source = tmp_path / "src" / "anonymous.csv"
    write_transactions(source, seed=7, customers=5)
    lines = source.read_text().splitlines()
    source.write_text("\n".join([lines[0]] + [",".join(["", *row.split(",")[1:]])
                                              for row in lines[1:]]) + "\n")
    drop(source, tmp_path / "inbox")
    outcome = pipeline(jobs_db, jobs_settings, trigger="test")
    rows = {row.job_id: row for row in history(jobs_db)}
    assert outcome.status == "failed" and rows["pipeline"].status == "failed"
    assert rows["segment"].status == "failed" and rows["segment"].error
    assert rows["pipeline"].error.startswith("segment: ")
    assert "offers" not in rows, "offers never run after a failed segmentation"


def test_busy_lock_records_skipped(jobs_settings: Settings, jobs_db: Engine) -> None:
    def never(*_args: object) -> Outcome:
        raise AssertionError("must not run while the lock is held elsewhere")

    with job_lock(engine=jobs_db, name="segment", holder="someone else"):
        outcome = run_recorded(jobs_db, jobs_settings, job_id="segment", trigger="test",
                               step=never)
    assert outcome.status == "skipped"
    row = history(jobs_db, "segment")[0]
    assert row.status == "skipped" and "held" in row.details["reason"]


def test_offers_disabled_by_config(jobs_settings: Settings, jobs_db: Engine) -> None:
    outcome = offer_pass(jobs_db, jobs_settings)
    assert outcome.status == "skipped"
    assert outcome.details["reason"].startswith("offers disabled by config")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unexpected_error_is_recorded_not_raised(jobs_settings: Settings,
                                                 jobs_db: Engine) -> None:
    def broken(*_args: object) -> Outcome:
        raise KeyError("surprise")

    outcome = run_recorded(jobs_db, jobs_settings, job_id="inbox", trigger="test", step=broken)
    assert outcome.status == "failed" and outcome.error == "KeyError: 'surprise'"
    assert history(jobs_db, "inbox")[0].error == "KeyError: 'surprise'"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_offer_step_calls_the_notifications_module(tmp_path: Path, db_url: str) -> None:
    from engine.store import get_engine, init_db
    from tests.conftest import make_settings
    from tests.jobs.conftest import JOBS_CONFIG

    settings = make_settings(tmp_path, db_url, JOBS_CONFIG.replace("enabled = false",
                                                                   "enabled = true"))
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    drop(write_transactions(tmp_path / "src" / "day.csv", seed=8), tmp_path / "inbox")
    outcome = pipeline(engine, settings, trigger="test")
    offers = history(engine, "offers")[0]
    assert outcome.status == "succeeded" and offers.status == "succeeded"
    assert offers.details["dry_run"] is True, "no Twilio credentials: a dry run"
    assert offers.details["run_id"] == outcome.run_id
    skipped = offers.details["skipped"]
    assert skipped and all(isinstance(count, int) and not reason.startswith("(")
                           for reason, count in skipped.items()), "reason -> count"


KILLED_JOB = """
import sys
from engine.settings import load_settings
from engine.store import get_engine
from jobs.tasks import run_recorded

def wait_for_the_kill(engine, settings):
    print("started", flush=True)
    sys.stdin.read()  # blocks until the parent kills this process

settings = load_settings(sys.argv[1])
run_recorded(get_engine(settings.database_url), settings, job_id="segment", trigger="tick",
             step=wait_for_the_kill)
"""


def test_a_job_killed_mid_run_is_closed_by_the_next_tick_of_a_live_scheduler(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine, db_url: str) -> None:
    """Not only at scheduler start: a second scheduler may run on for months."""
    victim = subprocess.Popen(
        [sys.executable, "-c", KILLED_JOB, str(tmp_path / "config.toml")],
        cwd=REPO, env={**os.environ, "SEGMINT_DATABASE_URL": db_url},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout is not None and victim.stdout.readline() == "started\n"
    finally:
        victim.kill()
        victim.wait()
    killed = history(jobs_db, "segment")
    assert [(row.status, row.details["pid"]) for row in killed] == [("running", victim.pid)]

    pipeline(jobs_db, jobs_settings, trigger="the live scheduler's next tick")

    closed = [row for row in history(jobs_db, "segment") if row.id == killed[0].id][0]
    assert closed.status == "failed" and closed.finished_at is not None
    assert closed.error.startswith("abandoned")
    assert all(row.status != "running" for row in history(jobs_db))


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_file_the_database_refuses_does_not_stop_the_files_after_it_or_the_run(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine) -> None:
    """PostgreSQL refuses a NUL byte in text (a StoreError, not an IngestError): the file is
    retried on later ticks, then moved to failed/ with its reason; the rest goes on at once."""
    inbox = tmp_path / "inbox"
    poison = write_transactions(tmp_path / "src" / "a_nul.csv", seed=51, customers=10)
    lines = poison.read_text().splitlines()
    lines[1] = lines[1].replace("Product", "Prod\x00uct", 1)
    poison.write_text("\n".join(lines) + "\n")
    drop(poison, inbox)
    drop(write_transactions(tmp_path / "src" / "b_good.csv", seed=52, customers=40,
                            prefix="B"), inbox)

    first = pipeline(jobs_db, jobs_settings, trigger="tick 1")

    assert first.status == "succeeded" and first.run_id is not None, first.error
    assert (inbox / "processed" / "b_good.csv").exists()
    inbox_row = history(jobs_db, "inbox")[0]
    assert [(f["file"], f["outcome"]) for f in inbox_row.details["files"]] == [
        ("a_nul.csv", "retry"), ("b_good.csv", "processed")]
    assert "NUL" in inbox_row.details["files"][0]["reason"]
    assert (inbox / "a_nul.csv").exists(), "kept for another try"

    for tick in (2, 3):
        assert pipeline(jobs_db, jobs_settings, trigger=f"tick {tick}").status == "succeeded"

    assert sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")) == [
        "failed", "processed"]
    reason = (inbox / "failed" / "a_nul.csv.error.txt").read_text()
    assert reason.startswith("a_nul.csv: not loaded after 3 attempts: ") and "NUL" in reason
    assert reason.count("\n") == 1, "one line"
    assert [row.status for row in history(jobs_db, "inbox")] == ["succeeded"] * 3
    assert run_count(jobs_db) == 1, "the retried file added nothing to run for"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_unreachable_database_stops_the_inbox_without_counting_an_attempt(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine) -> None:
    inbox = tmp_path / "inbox"
    drop(write_transactions(tmp_path / "src" / "day.csv", seed=53, customers=5), inbox)
    jobs_db.dispose()
    (tmp_path / "segmint.db").rename(tmp_path / "elsewhere.db")
    with pytest.raises(StoreError):
        pick_up_inbox(jobs_db, jobs_settings)
    assert (inbox / "day.csv").exists() and not (inbox / ".attempts").exists()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_lines_committed_after_a_run_read_the_lines_cause_the_next_run(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine) -> None:
    """File B's load begins (its loaded_at is stamped), a run starts and reads the lines
    without B's, then B commits: B's lines are new to that run though loaded 'before' it."""
    ingest_file(jobs_db, jobs_settings, write_transactions(tmp_path / "a.csv", seed=61,
                                                            customers=40))
    lines_of_a = load_lines(engine=jobs_db, columns=["invoice"]).shape[0]
    raw = read_file(write_transactions(tmp_path / "b.csv", seed=62, customers=40, prefix="B"))
    staged_b, _ = stage_lines(raw, choose_preset(raw, jobs_settings, None))
    runs: list[Outcome] = []

    def run_while_b_is_uncommitted(_lines: int) -> None:  # called inside B's transaction
        if not runs:
            runs.append(segment_if_due(jobs_db, jobs_settings))

    write_files(engine=jobs_db, files=[staged_b], on_progress=run_while_b_is_uncommitted)

    assert runs[0].status == "succeeded" and runs[0].run_id is not None
    run = get_run(engine=jobs_db, run_id=runs[0].run_id)
    assert run is not None and run["n_lines"] == lines_of_a, "the run did not see B"
    reason = fresh_data_reason(engine=jobs_db)
    assert reason == f"{staged_b.loaded} line(s) added since the last run read them"

    again = segment_if_due(jobs_db, jobs_settings)
    assert again.status == "succeeded" and again.run_id is not None
    assert fresh_data_reason(engine=jobs_db) is None
    assert segment_if_due(jobs_db, jobs_settings).status == "skipped"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_scratch_space_stops_the_inbox_without_counting_an_attempt(
        tmp_path: Path, jobs_settings: Settings, jobs_db: Engine, monkeypatch) -> None:
    """The machine's temp folder is unusable (removed, full) for more ticks than the attempt
    limit: the good file stays in the inbox, uncounted, and loads once the folder is back."""
    import tempfile

    inbox = tmp_path / "inbox"
    drop(write_transactions(tmp_path / "src" / "good_day.csv", seed=54, customers=10), inbox)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    for _tick in range(4):
        with pytest.raises(StoreError, match="no scratch folder for the load"):
            pick_up_inbox(jobs_db, jobs_settings)
    assert (inbox / "good_day.csv").exists() and not (inbox / ".attempts").exists()
    assert not (inbox / "failed").exists() or not any((inbox / "failed").iterdir())

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    outcome = pick_up_inbox(jobs_db, jobs_settings)
    assert [(f["file"], f["outcome"]) for f in outcome.details["files"]] == [
        ("good_day.csv", "processed")]
