"""Helpers for the jobs tests: small transaction files, dropping them into an inbox, and real
`segmint scheduler` child processes that are always reaped."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from engine.models import JobHistory, SegmentationRun
from engine.settings import Settings
from engine.store import get_engine, init_db
from tests.conftest import make_settings, session_scope

# k fixed and offers off: the jobs tests are about scheduling, not about the engine or SMS.
JOBS_CONFIG = """
[clustering]
k = 3
[scheduler]
inbox_dir = "inbox"
lock_ttl_seconds = 3600
[notifications]
enabled = false
"""
HEADER = ["customer_id", "timestamp", "invoice", "stock_code", "description", "quantity",
          "unit_price", "country"]


def write_transactions(path: Path, *, seed: int, customers: int = 80, prefix: str = "A") -> Path:
    """A generic-preset CSV: CUSTOMERS customers with 1-8 invoices of 1-4 lines in 2011."""
    rng = random.Random(seed)
    products = [(f"P{i:03d}", f"Product {i}", round(rng.uniform(0.5, 20), 2)) for i in range(30)]
    start = datetime(2011, 1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        invoice = 0
        for customer in range(customers):
            for _ in range(rng.randint(1, 8)):
                invoice += 1
                ts = start + timedelta(days=rng.randint(0, 300), seconds=rng.randint(0, 80_000))
                for _ in range(rng.randint(1, 4)):
                    code, description, price = rng.choice(products)
                    writer.writerow([f"C{customer:05d}", f"{ts:%Y-%m-%d %H:%M:%S}",
                                     f"{prefix}{invoice:06d}", code, description,
                                     rng.randint(1, 12), price, "United Kingdom"])
    return path


def drop(source: Path, inbox: Path) -> Path:
    """Deliver a finished file the way a careful uploader does: write .part, then rename.
    Its mtime is set a few seconds back so the inbox's settle check passes at once."""
    inbox.mkdir(parents=True, exist_ok=True)
    partial = inbox / (source.name + ".part")
    partial.write_bytes(source.read_bytes())
    past = time.time() - 5
    os.utime(partial, (past, past))
    return partial.rename(inbox / source.name)


def history(engine: Engine, job_id: str | None = None) -> list[JobHistory]:
    with session_scope(engine) as session:
        query = select(JobHistory).order_by(JobHistory.id)  # type: ignore[arg-type]
        if job_id:
            query = query.where(JobHistory.job_id == job_id)  # type: ignore[arg-type]
        return list(session.scalars(query))


def run_count(engine: Engine, status: str = "succeeded") -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(SegmentationRun)
                              .where(SegmentationRun.status == status)) or 0  # type: ignore[arg-type]


def wait_for(condition: Callable[[], object], *, what: str, timeout: float = 60,
             logs: list[Path] | None = None) -> object:
    """Poll until CONDITION is truthy; on timeout fail with the scheduler logs' tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    tails = "\n".join(f"--- {log}\n" + "\n".join(log.read_text().splitlines()[-30:])
                      for log in logs or [] if log.exists())
    pytest.fail(f"gave up waiting for {what}\n{tails}")


class Schedulers:
    """Starts `segmint scheduler` child processes; kills whatever is left at teardown."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.tmp_path = tmp_path
        self.db_url = db_url
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"scheduler-{len(self.processes) + 1}.log"
        env = {**os.environ, "SEGMINT_DATABASE_URL": self.db_url}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "segmint", "--config", str(self.tmp_path / "config.toml"),
                 "scheduler", *args], cwd=self.tmp_path, env=env, stdout=out,
                stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.logs.append(log)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()


@pytest.fixture
def jobs_settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, JOBS_CONFIG)


@pytest.fixture
def jobs_db(jobs_settings: Settings) -> Iterator[Engine]:
    engine = get_engine(jobs_settings.database_url)
    init_db(engine=engine)
    yield engine
    engine.dispose()


@pytest.fixture
def schedulers(tmp_path: Path, db_url: str) -> Iterator[Schedulers]:
    started = Schedulers(tmp_path, db_url)
    yield started
    started.close()
