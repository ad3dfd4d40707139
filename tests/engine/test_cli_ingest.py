"""`segmint ingest` and `segmint generate-demo-data` through the real console script."""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store import get_engine
from tests.conftest import count_rows, run_segmint

ROWS = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850,United Kingdom\n"
)


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> tuple[Path, dict[str, str]]:
    """A folder with config.toml and an initialised database; the env that points at it."""
    (tmp_path / "config.toml").write_text('[ingest]\nrejects_dir = "rejects"\nbatch_size = 2000\n')
    env = {"SEGMINT_DATABASE_URL": db_url}
    result = run_segmint("init-db", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return tmp_path, env


def counts(env: dict[str, str]) -> dict[str, int]:
    return count_rows(get_engine(env["SEGMINT_DATABASE_URL"]))


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if not line.startswith("20")]  # log lines
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_ingest_prints_summary_and_is_idempotent(project) -> None:
    folder, env = project
    (folder / "t.csv").write_text(ROWS + ROWS.splitlines(keepends=True)[1])
    first = run_segmint("ingest", "t.csv", cwd=folder, env=env)
    assert first.returncode == 0, first.stderr
    assert "read 3, loaded 2, duplicates skipped 1, rejected 0" in first.stdout
    before = counts(env)
    second = run_segmint("ingest", "t.csv", "--preset", "online-retail", cwd=folder, env=env)
    assert second.returncode == 0 and "already loaded" in second.stdout
    assert counts(env) == before


@pytest.mark.parametrize("name, content, fragments", [
    ("missing.csv", None, ["missing.csv", "file not found"]),
    ("wrong.csv", b"when,who\n2024-01-01,1\n", ["wrong.csv", "missing column(s)", "online-retail"]),
    ("cut.csv.gz", gzip.compress((ROWS * 200).encode())[:-40], ["cut.csv.gz", "truncated gzip"]),
    ("sheet.xlsx", b"not a zip", ["sheet.xlsx", "XLSX"]),
    ("dates.csv", ROWS.replace("2010-12-01", "01/12/2010").encode(),
     ["dates.csv", "every one of 2 lines was rejected", "line 2: bad timestamp"]),
])
def test_bad_input_exits_with_one_line_and_changes_nothing(project, name, content,
                                                           fragments) -> None:
    folder, env = project
    (folder / "ok.csv").write_text(ROWS)
    assert run_segmint("ingest", "ok.csv", cwd=folder, env=env).returncode == 0
    before = counts(env)
    if content is not None:
        (folder / name).write_bytes(content)
    result = run_segmint("ingest", name, "--preset", "online-retail", cwd=folder, env=env)
    assert_one_line_error(result, *fragments)
    assert counts(env) == before


def test_bad_rows_are_reported_not_fatal(project) -> None:
    """Bad dates and bad phone numbers are row problems: the file loads, the report names them."""
    folder, env = project
    (folder / "t.csv").write_text(ROWS + "536367,22745,POPPY,6,2010-02-31 08:34:00,2.1,13047,UK\n")
    (folder / "c.csv").write_text("customer_id,first_name,phone,signup_date,country,sms_consent\n"
                                  "17850,Ann,not-a-phone,2010-01-01,United Kingdom,true\n")
    result = run_segmint("ingest", "t.csv", "--customers", "c.csv", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr
    assert "rejected 1" in result.stdout and "rejects report" in result.stdout
    reports = sorted((folder / "rejects").glob("*.csv"))
    assert len(reports) == 2
    text = "".join(report.read_text() for report in reports)
    assert "4,bad timestamp '2010-02-31 08:34:00'" in text
    assert "2,invalid phone 'not-a-phone'" in text
    assert counts(env)["customer"] == 1  # 17850 kept despite the phone; 13047 only on a reject


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(ROWS)
    env = {"SEGMINT_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    result = run_segmint("ingest", "t.csv", cwd=tmp_path, env=env)
    assert_one_line_error(result, "unreachable")


def test_database_without_schema_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(ROWS)
    env = {"SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = run_segmint("ingest", "t.csv", cwd=tmp_path, env=env)
    assert_one_line_error(result, "init-db")


@pytest.mark.slow
def test_killed_ingest_leaves_nothing_and_a_rerun_loads_whole(project) -> None:
    folder, env = project
    made = run_segmint("generate-demo-data", "data", "--customers", "1500", cwd=folder, env=env)
    assert made.returncode == 0, made.stderr
    scratch = folder / "scratch"  # the temp folder of both ingests
    scratch.mkdir()
    env = {**env, "TMPDIR": str(scratch)}
    child = subprocess.Popen(
        [sys.executable, "-m", "segmint", "-v", "ingest", "data/transactions.csv"],
        cwd=folder, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    seen = []
    for line in child.stderr:  # wait until some batches are in the open transaction
        seen.append(line)
        progress = re.search(r"(?:staged|inserted) (\d+) of (\d+) lines", line)
        if progress and 2000 < int(progress.group(1)) < int(progress.group(2)):
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "".join(seen[-5:])
    assert counts(env) == {"source_file": 0, "transaction_line": 0, "product": 0, "customer": 0}
    # SQLite: the killed load's staging files are left in its scratch folder...
    left = [path.name for path in scratch.iterdir()]
    sqlite = env["SEGMINT_DATABASE_URL"].startswith("sqlite")
    assert all(f"-{child.pid}-" in name for name in left) and bool(left) == sqlite, left

    rerun = run_segmint("ingest", "data/transactions.csv", cwd=folder, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert list(scratch.iterdir()) == []  # ... and the next load removes them
    lines_in_file = sum(1 for _ in (folder / "data" / "transactions.csv").open()) - 1
    assert f"read {lines_in_file:,}, loaded {lines_in_file:,}" in rerun.stdout
    assert counts(env)["transaction_line"] == lines_in_file


def test_generate_demo_data_is_deterministic_and_loads_clean(tmp_path: Path,
                                                             sqlite_url: str) -> None:
    env = {"SEGMINT_DATABASE_URL": sqlite_url}
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        result = run_segmint("generate-demo-data", name, "--customers", "300", "--seed", seed,
                             cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        assert "transactions.csv" in result.stdout
    for file in ("transactions.csv", "customers.csv"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
        assert (tmp_path / "a" / file).read_bytes() != (tmp_path / "c" / file).read_bytes()

    assert run_segmint("init-db", cwd=tmp_path, env=env).returncode == 0
    loaded = run_segmint("ingest", "a/transactions.csv", "--customers", "a/customers.csv",
                         cwd=tmp_path, env=env)
    assert loaded.returncode == 0, loaded.stderr
    transactions, customers = loaded.stdout.splitlines()
    assert "rejected 0" in transactions and "duplicates skipped 0" in transactions
    assert "loaded 300, duplicates skipped 0, rejected 0" in customers


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run_segmint("--help", cwd=tmp_path)
    assert "ingest" in result.stdout and "generate-demo-data" in result.stdout
    result = run_segmint("ingest", "--help", cwd=tmp_path)
    assert "--customers" in result.stdout and "online-retail-ii" in result.stdout
