"""CLV inside a run, on SQLite and PostgreSQL: stored with the run in its one transaction, and
data it cannot model (only one-time buyers) is a note in a published run, never a failure."""

from __future__ import annotations

from pathlib import Path

from engine.columns import CLV_COLUMNS
from engine.ingest import ingest_file
from engine.pipeline import execute_run
from engine.store import clv as clv_store
from engine.store import get_engine, init_db
from engine.store import results as result_store
from engine.store import runs as run_store
from tests.conftest import make_settings
from tests.engine.factories import AS_OF, line, lines_frame, population, write_generic_csv

FAST = "[clustering]\nk_max = 5\nn_init = 2\ngap_references = 1\n"


def test_a_run_stores_its_clv_and_backtest(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, FAST)
    db = get_engine(settings.database_url)
    init_db(engine=db)
    ingest_file(db, settings, write_generic_csv(population(), tmp_path / "lines.csv"))
    run_id = execute_run(db, settings, as_of=AS_OF, k=3)
    fit = clv_store.read_fit(engine=db, run_id=run_id)
    assert fit is not None and fit["time_unit"] == "W"
    assert set(fit["bgnbd"]) == {"r", "alpha", "a", "b"}
    customers = clv_store.read_customers(engine=db, run_id=run_id)
    segments = result_store.read_segments(engine=db, run_id=run_id)
    assert sorted(customers["customer_id"]) == sorted(segments["customer_id"])
    assert set(CLV_COLUMNS) <= set(customers.columns)
    assert "backtest" in fit and ("overall" in fit["backtest"] or "note" in fit["backtest"])
    # A failed run's CLV rows go with it (mark_failed), the published run keeps its own.
    run_store.mark_failed(engine=db, run_id=run_id, error="test")
    assert clv_store.read_fit(engine=db, run_id=run_id) is None
    assert clv_store.read_customers(engine=db, run_id=run_id).empty
    db.dispose()


def test_only_one_time_buyers_still_publish_the_run(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, FAST)
    db = get_engine(settings.database_url)
    init_db(engine=db)
    rows = [line(f"C{i:02d}", f"{i:04d}", f"2011-0{1 + i % 9}-1{i % 10} 10:00", 10.0 + i,
                 stock_code=f"P{i % 4}") for i in range(40)]
    ingest_file(db, settings, write_generic_csv(lines_frame(rows), tmp_path / "lines.csv"))
    run_id = execute_run(db, settings, as_of=AS_OF, k=3)
    run = run_store.get_run(engine=db, run_id=run_id)
    assert run is not None and run["status"] == "succeeded"
    assert "clv" in run["diagnostics"]["skipped"]
    assert "repeat purchase day" in run["diagnostics"]["clv_notes"][0]
    fit = clv_store.read_fit(engine=db, run_id=run_id)
    assert fit is not None and fit["bgnbd"] is None and fit["notes"]
    assert clv_store.read_customers(engine=db, run_id=run_id).empty
    db.dispose()
