"""The time-split evaluation: known hits on a hand-made frame, the whole evaluation, the CLI."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from engine.evaluate import (
    BASELINE,
    SEGMINT,
    EvaluationError,
    default_cutoff,
    evaluate,
    new_products_after,
    popularity_baseline,
    score,
)
from engine.ingest import ingest_file
from engine.settings import ClusteringSettings, Settings
from engine.store import get_engine, init_db
from tests.conftest import make_settings, run_segmint
from tests.engine.factories import line, lines_frame, population, write_generic_csv

CUTOFF = date(2011, 6, 1)
HAND = lines_frame([
    line("a", "1", "2011-05-01 10:00", 2.0, stock_code="P1"),
    line("a", "1", "2011-05-01 10:00", 2.0, stock_code="P2"),
    line("b", "2", "2011-05-02 10:00", 2.0, stock_code="P1"),
    line("c", "3", "2011-05-03 10:00", 2.0, stock_code="P3"),
    line("a", "4", "2011-06-05 10:00", 2.0, stock_code="P2"),  # had it already
    line("a", "4", "2011-06-05 10:00", 2.0, stock_code="P3"),  # new: a test product
    line("a", "4", "2011-06-05 10:00", 2.0, stock_code="POST"),  # not a product
    line("b", "5", "2011-06-06 10:00", 2.0, stock_code="P2"),  # new
    line("b", "C6", "2011-06-07 10:00", -2.0, stock_code="P4"),  # a return, not a purchase
    line("c", "7", "2011-06-08 10:00", 2.0, stock_code="P3"),  # old: c has nothing new
    line("d", "8", "2011-06-09 10:00", 2.0, stock_code="P1"),  # no training history
])
TRAINED = pd.Index(["a", "b", "c"])


def test_new_products_after_the_cutoff() -> None:
    truth = new_products_after(HAND, CUTOFF, TRAINED, ["POST"])
    assert set(zip(truth["customer_id"], truth["stock_code"], strict=True)) == {("a", "P3"),
                                                                                ("b", "P2")}


def test_popularity_baseline_leaves_out_what_each_customer_has() -> None:
    train = HAND.loc[HAND["ts"] < pd.Timestamp(CUTOFF)]
    customers = pd.Index(["a", "b"])
    top1 = popularity_baseline(train, customers, 1, ["POST"])
    assert list(zip(top1["customer_id"], top1["stock_code"], strict=True)) == [("a", "P3"),
                                                                               ("b", "P2")]
    top2 = popularity_baseline(train, customers, 2, ["POST"])
    assert sorted(zip(top2["customer_id"], top2["stock_code"], strict=True)) == [
        ("a", "P3"), ("b", "P2"), ("b", "P3")]  # ranking P1 (2 buyers), P2, P3 (code order)


def test_scores_count_hits_against_k() -> None:
    truth = pd.DataFrame({"customer_id": ["a", "b", "b"], "stock_code": ["P3", "P2", "P5"]})
    recommended = pd.DataFrame({"customer_id": ["a", "a", "b", "b"],
                                "stock_code": ["P9", "P8", "P2", "P7"]})
    metrics = score(recommended, truth, pd.Index(["a", "b"]), k=2)
    assert metrics == pytest.approx({"hit_rate": 0.5, "precision": 0.25, "recall": 0.25})
    assert score(recommended, truth, pd.Index([]), k=2)["hit_rate"] == 0.0


def test_default_cutoff_is_eighty_percent_through() -> None:
    lines = lines_frame([line("a", "1", "2011-01-01 00:00", 1.0),
                         line("a", "2", "2011-11-01 00:00", 1.0)])
    assert default_cutoff(lines) == date(2011, 9, 1)


def test_whole_evaluation_on_a_synthetic_population() -> None:
    lines = population()
    settings = Settings(clustering=ClusteringSettings(k=3, n_init=2))
    cutoff = date(2011, 10, 1)
    result = evaluate(lines, None, settings, cutoff)
    before = set(lines.loc[lines["ts"] < pd.Timestamp(cutoff), "customer_id"])
    truth = new_products_after(lines, cutoff, pd.Index(sorted(before)), [])
    assert result.n_customers == truth["customer_id"].nunique() > 0
    assert list(result.metrics.index) == [SEGMINT, BASELINE]
    assert ((result.metrics >= 0) & (result.metrics <= 1)).all().all()
    assert f"hit_rate@{settings.evaluate.k}" in result.table()


def test_cutoff_outside_the_data_is_an_error() -> None:
    with pytest.raises(EvaluationError, match="cutoff 2030-01-01 leaves no lines"):
        evaluate(HAND, None, Settings(), date(2030, 1, 1))


def test_cli_evaluate(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url,
                             "[clustering]\nk = 3\nn_init = 2\n[evaluate]\ncutoff = 2011-10-01\n")
    db = get_engine(settings.database_url)
    init_db(engine=db)
    ingest_file(db, settings, write_generic_csv(population(), tmp_path / "lines.csv"))
    env = {"SEGMINT_DATABASE_URL": sqlite_url}
    config = ["--config", str(tmp_path / "config.toml")]
    shown = run_segmint(*config, "evaluate", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "cutoff 2011-10-01:" in shown.stdout
    assert SEGMINT in shown.stdout and BASELINE in shown.stdout
    bad = run_segmint(*config, "evaluate", "--cutoff", "2011-13-01", cwd=tmp_path, env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    late = run_segmint(*config, "evaluate", "--cutoff", "2030-01-01", cwd=tmp_path, env=env)
    last = late.stderr.strip().splitlines()[-1]
    assert late.returncode == 1 and last.startswith("error: cutoff 2030-01-01 leaves no lines")
