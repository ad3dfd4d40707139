"""A command line that answers at once: commands that compute nothing import no analytics library.

Each command runs as `python -X importtime -m segmint ...` in a fresh process; the modules it
imported are read from the import-time report on stderr (not a timing test: it fails when a
heavy import comes back at module level)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from engine.store import get_engine, init_db
from engine.store.jobs import start_job
from engine.store.runs import create_run, mark_failed
from engine.store.users import save_user

# Analytics, dashboard and modelling libraries: only the commands that compute import them.
HEAVY = ("sklearn", "scipy", "mlxtend", "dash", "plotly", "pymc", "pymc_marketing", "pytensor",
         "kneed", "implicit", "pyspark", "statsmodels", "matplotlib", "threadpoolctl")


def imported_modules(*args: str, stdin: str | None = None, ok: bool = True) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "segmint", *args],
                          input=stdin, capture_output=True, text=True, check=False)
    assert (done.returncode == 0) == ok, done.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
             if line.startswith("import time:") and line.count("|") == 2}
    assert "segmint.cli" in names  # the report was read
    return names


def heavy_in(names: set[str]) -> list[str]:
    return sorted(name for name in names if name.split(".")[0] in HEAVY)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A store with a failed run (a window, no k), a running one (nothing but its start), a
    running job and a user, so the listing commands format real rows."""
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "segmint.db"}"\n')
    engine = get_engine(f"sqlite:///{tmp_path / 'segmint.db'}")
    init_db(engine=engine)
    failed = create_run(engine=engine, params={}, as_of=date(2011, 12, 10),
                        since=date(2011, 1, 1), until=None, k_mode="auto", seed=1)
    mark_failed(engine=engine, run_id=failed, error="no customer with a purchase in the window")
    create_run(engine=engine, params={}, as_of=None, since=None, until=None, k_mode="auto",
               seed=1)
    start_job(engine=engine, job_id="segment", trigger="cli")
    save_user(engine=engine, username="ann", password_hash="not-a-real-hash", role="manager")
    engine.dispose()
    return path


def test_help_imports_click_and_nothing_of_the_engine() -> None:
    names = imported_modules("--help")
    assert heavy_in(names) == []
    assert sorted(name for name in names if name.split(".")[0] in
                  ("pandas", "numpy", "pyarrow", "sqlalchemy", "alembic", "pydantic")) == []


@pytest.mark.parametrize("command", [["runs"], ["runs", "--json"], ["jobs"], ["users", "list"]])
def test_listing_commands_import_no_analytics_library(config: Path, command: list[str]) -> None:
    names = imported_modules("--config", str(config), *command)
    assert heavy_in(names) == []
    # nor pandas (0.6 s of CPU: rows are printed as they come) or alembic (0.5 s: the schema
    # check reads its version table with one SELECT)
    assert sorted(name for name in names if name.split(".")[0] in
                  ("pandas", "numpy", "pyarrow", "alembic")) == []


def test_runs_lists_unfinished_runs_with_empty_cells(config: Path) -> None:
    """Rows straight from the store (no frame): NULLs are "-" in the table and null in JSON."""
    args = [sys.executable, "-m", "segmint", "--config", str(config), "runs"]
    listed = json.loads(subprocess.run([*args, "--json"], capture_output=True, text=True,
                                       check=True).stdout)
    assert [(row["id"], row["status"]) for row in listed] == [(2, "running"), (1, "failed")]
    running, failed = listed
    assert running["finished"] is None and running["k"] is None
    assert running["n_customers"] is None and running["as_of"] is None
    assert running["window"] == "start..end" and running["error"] is None
    assert failed["window"] == "2011-01-01..end" and failed["as_of"] == "2011-12-10"
    assert failed["error"] == "no customer with a purchase in the window"
    assert len(failed["started"]) == len("2011-12-10 00:00:00") and failed["finished"]
    table = subprocess.run(args, capture_output=True, text=True, check=True).stdout.splitlines()
    assert table[1].split()[:2] == ["2", "running"] and table[1].split()[-3:] == [
        "start..end", "-", "-"]
    assert table[2].split()[-3:] == ["2011-01-01..end", "-", "-"]


def test_users_add_imports_no_analytics_library(config: Path) -> None:
    names = imported_modules("--config", str(config), "users", "add", "ann", "--role", "manager",
                             stdin="a long password\n")
    assert heavy_in(names) == []


@pytest.mark.parametrize("kind", ["segments", "rules", "recommendations", "profiles"])
def test_export_of_stored_results_imports_no_analytics_library(config: Path, kind: str) -> None:
    # No run is stored: the command stops with its one-line error after importing everything
    # an export imports.
    names = imported_modules("--config", str(config), "export", kind, ok=False)
    assert heavy_in(names) == []
    assert "engine.exports" in names


def test_export_transitions_imports_no_analytics_library(config: Path) -> None:
    names = imported_modules("--config", str(config), "export", "transitions", "--from", "1",
                             ok=False)
    assert heavy_in(names) == []
    assert "engine.classes" in names
