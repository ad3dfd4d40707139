"""load_lines on a SQLite file: the ADBC read runs in a child process, so it cannot disturb the
locks this process's sqlite3 connections hold (two copies of SQLite in one process would)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.ingest import ingest_file
from engine.store import StoreError, get_engine, init_db
from engine.store.lines_read import load_lines
from tests.conftest import make_settings

ROWS = [
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17851,United Kingdom",
]
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"

# Another process asks for the write lock and gives up at once if someone holds it.
TRY_WRITE = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    connection.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print(exc)
else:
    print("got the write lock")
"""


def _try_write(path: Path) -> str:
    return subprocess.run([sys.executable, "-c", TRY_WRITE, str(path)], capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "segmint.db"
    settings = make_settings(tmp_path, f"sqlite:///{path}")
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    source = tmp_path / "retail.csv"
    source.write_text(HEADER + "".join(row + "\n" for row in ROWS))
    ingest_file(engine, settings, source, preset="online-retail")
    engine.dispose()
    return path


def test_reading_lines_keeps_this_process_write_lock(store: Path) -> None:
    writer = sqlite3.connect(store, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        assert _try_write(store) == "database is locked"

        lines = load_lines(engine=get_engine(f"sqlite:///{store}"))

        assert lines["customer_id"].tolist() == ["17850", "17851"]
        # Had the driver opened (and closed) the file in this process, the lock would be gone.
        assert _try_write(store) == "database is locked"
    finally:
        writer.rollback()
        writer.close()
    assert _try_write(store) == "got the write lock"


def test_a_failed_read_is_one_line_naming_the_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()  # a SQLite file without Segmint's tables

    with pytest.raises(StoreError) as caught:
        load_lines(engine=get_engine(f"sqlite:///{path}"))

    message = str(caught.value)
    assert "empty.db" in message
    assert "transaction_line" in message
    assert "\n" not in message
