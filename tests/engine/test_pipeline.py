"""The run pipeline and the runs store, on SQLite and PostgreSQL: published runs, failed runs,
a run killed with SIGKILL, and the run / runs / export commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from engine.classes import CLASSES
from engine.columns import SEGMENT_COLUMNS
from engine.ingest import ingest_file
from engine.pipeline import RunError, execute_run, segment
from engine.settings import Settings
from engine.store import get_engine, init_db
from engine.store import results as result_store
from engine.store import runs as run_store
from tests.conftest import make_settings, run_segmint
from tests.engine.factories import AS_OF, line, lines_frame, population, write_generic_csv

FAST = "[clustering]\nk_max = 6\nn_init = 3\ngap_references = 2\n"


def _loaded(tmp_path: Path, db_url: str, config: str = FAST) -> tuple[Settings, object]:
    settings = make_settings(tmp_path, db_url, config)
    db = get_engine(settings.database_url)
    init_db(engine=db)
    ingest_file(db, settings, write_generic_csv(population(), tmp_path / "lines.csv"))
    return settings, db


def test_empty_window_is_a_run_error() -> None:
    with pytest.raises(RunError, match="no transaction lines in the window"):
        segment(population(), None, Settings(), since=date(2030, 1, 1))


def test_until_must_precede_as_of() -> None:
    with pytest.raises(RunError, match="must be before --as-of"):
        segment(population(), None, Settings(), as_of=date(2011, 6, 1), until=date(2011, 6, 1))


def test_as_of_without_until_leaves_out_later_lines() -> None:
    result = segment(population(), None, Settings(), as_of=date(2011, 7, 1), k=3)
    assert result.as_of == date(2011, 7, 1)
    assert (result.segments["recency_days"] >= 1).all()
    assert not result.segments["customer_id"].str.startswith("N").any()  # new ones buy in Nov


def test_without_stock_codes_rules_and_recommendations_are_skipped() -> None:
    lines = population().assign(stock_code=None)
    result = segment(lines, None, Settings(), as_of=AS_OF, k=3)
    assert result.rules is None and result.recommendations is None
    assert result.diagnostics["skipped"] == ["rules", "recommendations"]
    assert len(result.segments) == population()["customer_id"].nunique()


def test_window_and_default_as_of() -> None:
    lines = lines_frame([line("a", "1", "2011-01-05", 10.0), line("b", "2", "2011-02-05", 10.0),
                         line("c", "3", "2011-03-05", 10.0), line("d", "4", "2011-03-07", 10.0),
                         line("e", "5", "2011-03-08", 10.0), line("a", "6", "2011-05-01", 10.0)])
    result = segment(lines, None, Settings(), since=date(2011, 2, 1), until=date(2011, 3, 31),
                     k=2)
    assert result.as_of == date(2011, 3, 9)  # the day after the window's last line
    assert result.segments["customer_id"].tolist() == ["b", "c", "d", "e"]


def test_run_is_published_with_all_results(tmp_path: Path, db_url: str) -> None:
    settings, db = _loaded(tmp_path, db_url)
    assert run_store.published_run_id(engine=db) is None
    run_id = execute_run(db, settings)
    assert run_store.published_run_id(engine=db) == run_id
    run = run_store.get_run(engine=db, run_id=run_id)
    assert run is not None and run["status"] == "succeeded" and run["error"] is None
    last_day = population()["ts"].max().date()
    assert run["as_of"] == last_day + pd.Timedelta(days=1)
    assert run["n_customers"] == population()["customer_id"].nunique()
    scores = pd.DataFrame(run["diagnostics"]["scores"])
    assert scores["k"].tolist() == [3, 4, 5, 6] and run["k"] == run["diagnostics"]["chosen_k"]
    assert set(run["diagnostics"]["classes"]) == set(CLASSES)
    segments = result_store.read_segments(engine=db, run_id=run_id)
    assert len(segments) == run["n_customers"] and segments["customer_id"].is_unique
    profiles = result_store.read_profiles(engine=db, run_id=run_id)
    assert profiles["size"].sum() == run["n_customers"] and len(profiles) == run["k"]
    assert profiles["revenue_share"].sum() == pytest.approx(1.0, abs=1e-3)
    assert len(result_store.read_rules(engine=db, run_id=run_id)) > 0
    assert len(result_store.read_recommendations(engine=db, run_id=run_id)) > 0


def test_saved_results_read_back_unchanged(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, FAST)
    db = get_engine(settings.database_url)
    init_db(engine=db)
    result = segment(population(), None, settings, as_of=AS_OF, k=3)
    assert result.rules is not None and result.recommendations is not None
    rules = result.rules.reset_index(drop=True)
    rules["conviction"] = rules["conviction"].astype(float)
    rules.loc[0, "conviction"] = float("inf")  # not finite: stored as NULL
    run_id = run_store.create_run(engine=db, params={}, as_of=AS_OF, since=None, until=None,
                                  k_mode="fixed", seed=1)
    result_store.save_results(engine=db, run_id=run_id, result=replace(result, rules=rules))

    def ordered(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        return frame.sort_values(by).reset_index(drop=True)

    pd.testing.assert_frame_equal(
        result_store.read_segments(engine=db, run_id=run_id),
        ordered(result.segments, ["customer_id"]), check_dtype=False)
    pd.testing.assert_frame_equal(
        result_store.read_profiles(engine=db, run_id=run_id)[result.profiles.columns],
        result.profiles, check_dtype=False)
    pd.testing.assert_frame_equal(
        result_store.read_recommendations(engine=db, run_id=run_id)[result.recommendations.columns],
        ordered(result.recommendations, ["customer_id", "rank"]), check_dtype=False)
    stored = result_store.read_rules(engine=db, run_id=run_id)
    assert len(stored) == len(rules)
    assert stored["conviction"].isna().iloc[0]
    assert stored["antecedents"].tolist() == [";".join(items) for items in rules["antecedents"]]
    assert [None if pd.isna(c) else int(c) for c in stored["cluster"]] == \
        [None if pd.isna(c) else int(c) for c in rules["cluster"]]
    assert stored["support"].tolist() == pytest.approx(rules["support"].tolist())


def test_a_refused_result_row_writes_nothing(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, FAST)
    db = get_engine(settings.database_url)
    init_db(engine=db)
    result = segment(population(), None, settings, as_of=AS_OF, k=3)
    assert result.rules is not None
    rules = result.rules.reset_index(drop=True)
    rules.loc[len(rules) - 1, "lift"] = float("nan")  # lift is NOT NULL: the last row fails
    run_id = run_store.create_run(engine=db, params={}, as_of=AS_OF, since=None, until=None,
                                  k_mode="fixed", seed=1)
    with pytest.raises(run_store.StoreError, match=r"(?i)^database .*not[ -]null") as failure:
        result_store.save_results(engine=db, run_id=run_id, result=replace(result, rules=rules))
    assert "\n" not in str(failure.value)
    assert result_store.read_segments(engine=db, run_id=run_id).empty
    assert result_store.read_rules(engine=db, run_id=run_id).empty
    assert run_store.get_run(engine=db, run_id=run_id)["status"] == "running"


def test_failed_run_keeps_the_published_run(tmp_path: Path, db_url: str) -> None:
    settings, db = _loaded(tmp_path, db_url)
    good = execute_run(db, settings, k=3)
    with pytest.raises(RunError, match="no transaction lines in the window"):
        execute_run(db, settings, since=date(2030, 1, 1))
    runs = run_store.list_runs(engine=db)
    failed = runs.iloc[0]
    assert failed["status"] == "failed" and "no transaction lines" in failed["error"]
    assert run_store.published_run_id(engine=db) == good
    assert result_store.read_segments(engine=db, run_id=int(failed["id"])).empty
    with pytest.raises(run_store.StoreError, match="status failed"):
        run_store.resolve_run(engine=db, ref=int(failed["id"]))


def test_killed_run_leaves_the_published_run(tmp_path: Path, db_url: str) -> None:
    # Slow clustering on purpose, so the SIGKILL lands in the middle of the run.
    slow = "[clustering]\nk_min = 3\nk_max = 30\nn_init = 60\ngap_references = 20\n"
    settings, db = _loaded(tmp_path, db_url, slow)
    good = execute_run(db, settings, k=3)
    child = subprocess.Popen(
        [sys.executable, "-m", "segmint", "--config", str(tmp_path / "config.toml"), "run"],
        cwd=tmp_path, env={**os.environ, "SEGMINT_DATABASE_URL": db_url},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stderr is not None
        for log_line in child.stderr:
            if "customers with a purchase" in log_line:  # the run is in its clustering stage
                break
        else:
            pytest.fail("the run ended before reaching its clustering stage")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    killed = run_store.list_runs(engine=db).iloc[0]
    assert killed["status"] == "running" and int(killed["id"]) != good
    assert run_store.published_run_id(engine=db) == good
    assert run_store.resolve_run(engine=db, ref="latest") == good
    # The next run notices the dead process and records the killed run as failed.
    quick = make_settings(tmp_path, db_url, FAST)
    newer = execute_run(db, quick, k=3)
    runs = run_store.list_runs(engine=db).set_index("id")
    assert runs.loc[int(killed["id"]), "status"] == "failed"
    assert "abandoned" in runs.loc[int(killed["id"]), "error"]
    assert run_store.published_run_id(engine=db) == newer


def test_cli_run_runs_and_exports(tmp_path: Path, db_url: str) -> None:
    _loaded(tmp_path, db_url)
    env = {"SEGMINT_DATABASE_URL": db_url}
    config = ["--config", str(tmp_path / "config.toml")]
    first = run_segmint(*config, "run", "--k", "3", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    first_id = int(first.stdout.strip())
    assert "clustering:" in first.stderr and "write:" in first.stderr  # stage timings logged
    second = run_segmint(*config, "run", "--as-of", "2011-10-01", "--k", "auto", cwd=tmp_path,
                         env=env)
    assert second.returncode == 0, second.stderr
    second_id = int(second.stdout.strip())

    listed = run_segmint(*config, "runs", "--json", cwd=tmp_path, env=env)
    rows = json.loads(listed.stdout)
    assert [row["id"] for row in rows] == [second_id, first_id]
    assert rows[0]["status"] == "succeeded" and rows[0]["as_of"] == "2011-10-01"
    assert rows[1]["k"] == 3 and rows[1]["window"] == "start..end"
    table = run_segmint(*config, "runs", cwd=tmp_path, env=env).stdout.splitlines()
    assert table[0].split() == ["id", "status", "started", "finished", "window", "k",
                                "n_customers"]

    out = tmp_path / "segments.csv"
    exported = run_segmint(*config, "export", "segments", "-o", str(out), cwd=tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr
    segments = pd.read_csv(out, dtype={"customer_id": str, "rfm_code": str})
    assert segments.columns.tolist() == SEGMENT_COLUMNS
    assert len(segments) == rows[0]["n_customers"]

    moves = run_segmint(*config, "export", "transitions", "--from", str(first_id), "--to",
                        "latest", cwd=tmp_path, env=env)
    assert moves.returncode == 0, moves.stderr
    transitions = pd.read_csv(pd.io.common.StringIO(moves.stdout))
    assert transitions.columns.tolist() == ["from_class", "to_class", "customers"]
    assert transitions["customers"].sum() == len(
        set(segments["customer_id"]) | set(result_store.read_segments(
            engine=get_engine(db_url), run_id=first_id)["customer_id"]))

    for kind in ("rules", "recommendations", "profiles"):
        result = run_segmint(*config, "export", kind, "--run", str(first_id), cwd=tmp_path,
                             env=env)
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) > 1, kind

    missing = run_segmint(*config, "export", "segments", "--run", "999", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1] == "error: run 999 does not exist"
    bad_k = run_segmint(*config, "run", "--k", "many", cwd=tmp_path, env=env)
    assert bad_k.returncode != 0 and "Traceback" not in bad_k.stderr
    empty = run_segmint(*config, "run", "--since", "2030-01-01", cwd=tmp_path, env=env)
    assert empty.returncode == 1 and "Traceback" not in empty.stderr
    assert "no transaction lines in the window" in empty.stderr
