"""job_lock on SQLite (lock rows, stale takeover) and PostgreSQL (advisory locks), across
threads and real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select

from engine.models import JobLock
from engine.store.locks import LockBusy, job_lock
from tests.conftest import dead_pid

LOCKS = JobLock.__table__  # type: ignore[attr-defined]

HOLD_SCRIPT = textwrap.dedent("""
    import sys
    from engine.store import get_engine
    from engine.store.locks import job_lock
    with job_lock(engine=get_engine(sys.argv[1]), name=sys.argv[2], holder="test child"):
        print("held", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
""")


def hold_in_child(url: str, name: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, url, name],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def can_take(engine: Engine, name: str) -> bool:
    try:
        with job_lock(engine=engine, name=name, holder="probe"):
            return True
    except LockBusy:
        return False


def test_lock_is_exclusive_and_released(jobs_db: Engine) -> None:
    with job_lock(engine=jobs_db, name="segment", holder="first"):
        with pytest.raises(LockBusy, match="segment"), \
                job_lock(engine=jobs_db, name="segment", holder="two"):
            pass
        assert can_take(jobs_db, "inbox"), "locks with other names are independent"
    assert can_take(jobs_db, "segment"), "the lock is released at the end of the block"


def test_lock_released_when_the_block_raises(jobs_db: Engine) -> None:
    with pytest.raises(RuntimeError), job_lock(engine=jobs_db, name="segment", holder="x"):
        raise RuntimeError("boom")
    assert can_take(jobs_db, "segment")


def test_lock_busy_message_is_one_line(jobs_db: Engine) -> None:
    with (job_lock(engine=jobs_db, name="offers", holder="first"),
          pytest.raises(LockBusy) as caught,
          job_lock(engine=jobs_db, name="offers", holder="second")):
        pass
    assert "\n" not in str(caught.value) and "offers" in str(caught.value)


def test_lock_held_by_another_process(jobs_db: Engine, db_url: str) -> None:
    child = hold_in_child(db_url, "segment")
    try:
        assert not can_take(jobs_db, "segment")
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(timeout=30)
    assert child.returncode == 0
    assert can_take(jobs_db, "segment")


def test_lock_of_a_killed_process_is_taken_over(jobs_db: Engine, db_url: str) -> None:
    """SIGKILL: PostgreSQL drops the session's advisory lock; on SQLite the row's holder pid is
    dead on this host, so the row is stale and taken over."""
    import time

    child = hold_in_child(db_url, "segment")
    assert not can_take(jobs_db, "segment")
    child.send_signal(signal.SIGKILL)
    child.wait()
    # The server notices the closed connection asynchronously: poll briefly (not a timing test).
    deadline = time.monotonic() + 15
    while not can_take(jobs_db, "segment") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert can_take(jobs_db, "segment")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("holder", "expires_in", "taken"), [
    (lambda: f"{socket.gethostname()}:{os.getpid()}:alive", timedelta(hours=1), False),
    (lambda: f"{socket.gethostname()}:{os.getpid()}:alive", timedelta(seconds=-1), True),
    (lambda: f"{socket.gethostname()}:{dead_pid()}:dead", timedelta(hours=1), True),
    (lambda: f"other-host.example:{os.getpid()}:elsewhere", timedelta(hours=1), False),
    (lambda: f"other-host.example:{os.getpid()}:elsewhere", timedelta(seconds=-1), True),
    (lambda: "not a holder string", timedelta(hours=1), False),
], ids=["live-holder", "expired", "dead-pid", "other-host", "other-host-expired", "garbage"])
def test_sqlite_stale_rows(jobs_db: Engine, holder, expires_in: timedelta, taken: bool) -> None:
    now = datetime.now(UTC)
    previous = holder()
    with jobs_db.begin() as connection:
        connection.execute(insert(LOCKS).values(name="segment", holder=previous,
                                                acquired_at=now - timedelta(minutes=5),
                                                expires_at=now + expires_in))
    assert can_take(jobs_db, "segment") is taken
    with jobs_db.connect() as connection:
        remaining = connection.execute(select(LOCKS.c.holder)).scalars().all()
    # A taken-over row is released (deleted) afterwards; a busy one is left as it was.
    assert remaining == ([] if taken else [previous])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_row_records_holder_and_expiry(jobs_db: Engine, jobs_settings) -> None:
    with (job_lock(engine=jobs_db, name="inbox", holder="job inbox", ttl_seconds=120),
          jobs_db.connect() as connection):
        row = connection.execute(select(LOCKS)).one()
    assert row.holder == f"{socket.gethostname()}:{os.getpid()}:job inbox"
    assert timedelta(seconds=119) <= row.expires_at - row.acquired_at <= timedelta(seconds=121)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_uses_advisory_lock_not_rows(jobs_db: Engine) -> None:
    with job_lock(engine=jobs_db, name="segment", holder="pg"), jobs_db.connect() as connection:
        assert connection.execute(select(LOCKS)).all() == []
        held = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid <> pg_backend_pid()").scalar()
        assert held >= 1
