"""What stops the Spark backend, each with one `error:` line, the run recorded as failed and the
last good run still the published one: pyspark not installed, Java missing, a cluster master out
of reach, a SQLite store (JDBC needs PostgreSQL), a Parquet dataset without the line columns.

The command line runs as a child process (tests/conftest.py run_segmint), with the real
condition where one can be made: a JAVA_HOME without Java, a closed port. pyspark's absence is
made by blocking its import in the child (sys.modules["pyspark"] = None, Python's documented
way to make an import fail), as the test's interpreter has it installed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.ingest import ingest_file
from engine.pipeline import RunError, execute_run
from engine.store import get_engine, init_db
from engine.store import runs as run_store
from tests.conftest import REPO, make_settings, run_segmint
from tests.engine.factories import population, write_generic_csv

pytestmark = pytest.mark.spark

QUICK = ("[clustering]\nk = 3\nn_init = 2\n[clv]\nenabled = false\n"
         "[spark]\nsource = \"parquet\"\nparquet_path = \"lines.parquet\"\n")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A SQLite store with a published (pandas) run, and its config reading lines.parquet."""
    folder = tmp_path_factory.mktemp("spark-errors")
    settings = make_settings(folder, f"sqlite:///{folder / 'segmint.db'}", QUICK)
    (folder / "config.toml").write_text(
        QUICK + f'[database]\nurl = "sqlite:///{folder}/segmint.db"\n')
    db = get_engine(settings.database_url)
    init_db(engine=db)
    lines = population(seed=2)
    ingest_file(db, settings, write_generic_csv(lines, folder / "lines.csv"))
    lines.to_parquet(folder / "lines.parquet", coerce_timestamps="us",
                     allow_truncated_timestamps=True)
    good = execute_run(db, settings)
    db.dispose()
    return folder, good


def refused(folder: Path, good: int, config: str = "config.toml", *,
            env: dict[str, str] | None = None, python: list[str] | None = None) -> str:
    """Runs `segmint run --backend spark`; asserts one error line, exit 1, the good run still
    published; returns the line."""
    args = ["--config", str(folder / config), "run", "--backend", "spark"]
    if python is None:
        done = run_segmint(*args, cwd=folder, env=env)
    else:
        done = subprocess.run([sys.executable, "-c", *python, *args], cwd=folder,
                              capture_output=True, text=True, timeout=300,
                              env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    errors = [row for row in done.stderr.splitlines() if row.startswith("error:")]
    assert done.returncode == 1, done.stderr
    assert len(errors) == 1, done.stderr
    db = get_engine(f"sqlite:///{folder / 'segmint.db'}")
    assert run_store.published_run_id(engine=db) == good
    db.dispose()
    return errors[0]


def test_java_missing(store: tuple[Path, int]) -> None:
    folder, good = store
    line = refused(folder, good, env={"JAVA_HOME": str(folder / "no-java")})
    assert f"Java did not start (JAVA_HOME={folder / 'no-java'})" in line
    assert "openjdk-17-jre-headless" in line


def test_pyspark_missing(store: tuple[Path, int]) -> None:
    folder, good = store
    block = ("import sys; sys.modules['pyspark'] = None; sys.argv = ['segmint', *sys.argv[1:]]; "
             "from segmint.cli import main; main()")
    line = refused(folder, good, python=[block])
    assert "needs pyspark: pip install 'segmint[spark]'" in line


def test_unreachable_master(store: tuple[Path, int]) -> None:
    folder, good = store
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = (folder / "config.toml").read_text().replace(
        "[spark]\n", f'[spark]\nmaster = "spark://127.0.0.1:{port}"\n')
    (folder / "cluster.toml").write_text(text)
    line = refused(folder, good, "cluster.toml")
    assert f"spark.master spark://127.0.0.1:{port}: unreachable" in line


def test_sqlite_store_needs_postgres_or_parquet(store: tuple[Path, int]) -> None:
    folder, good = store
    text = (folder / "config.toml").read_text().replace('source = "parquet"', 'source = "store"')
    (folder / "store.toml").write_text(text)
    line = refused(folder, good, "store.toml")
    assert ('spark.source = "store" reads the store over JDBC, which needs PostgreSQL; this '
            'store is sqlite') in line


def test_parquet_without_the_line_columns(store: tuple[Path, int], spark: Any) -> None:
    folder, good = store
    population(seed=2).drop(columns=["is_return", "invoice"]).to_parquet(
        folder / "partial.parquet", coerce_timestamps="us", allow_truncated_timestamps=True)
    settings = make_settings(folder, f"sqlite:///{folder / 'segmint.db'}",
                             QUICK.replace("lines.parquet", "partial.parquet"))
    db = get_engine(settings.database_url)
    with pytest.raises(RunError, match=r"spark.parquet_path .*partial.parquet: required "
                                       r"column\(s\) invoice, is_return missing"):
        execute_run(db, settings, backend="spark")
    assert run_store.published_run_id(engine=db) == good
    db.dispose()
