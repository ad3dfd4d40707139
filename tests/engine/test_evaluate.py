"""The time-split evaluation: known hits on a hand-made frame, the whole evaluation, the CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.evaluate import (
    ALS,
    BASELINE,
    BM25,
    SEGMINT,
    VERSUS_COLUMNS,
    EvaluationError,
    EvaluationResult,
    default_cutoff,
    evaluate,
    implicit_baselines,
    new_products_after,
    paired_versus,
    per_customer,
    popularity_baseline,
    purchase_matrix,
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


def test_scores_by_hand_on_three_customers() -> None:
    """a: 2 of 3 relevant in a top 3 (one list item not relevant); b: 0 hits; c: a short list
    of 1 with its only relevant product. k = 3.
    hit = (1 + 0 + 1) / 3; precision = (2/3 + 0 + 1/3) / 3 = 1/3 (c's short list counts 1/k);
    recall = (2/3 + 0/1 + 1/2) / 3 = 7/18."""
    truth = pd.DataFrame({"customer_id": ["a", "a", "a", "b", "c", "c"],
                          "stock_code": ["P1", "P2", "P3", "P4", "P5", "P6"]})
    recommended = pd.DataFrame({"customer_id": ["a", "a", "a", "b", "b", "c"],
                                "stock_code": ["P1", "P9", "P2", "P8", "P7", "P5"]})
    metrics = score(recommended, truth, pd.Index(["a", "b", "c"]), k=3)
    assert metrics == pytest.approx({"hit_rate": 2 / 3, "precision": 1 / 3, "recall": 7 / 18})


def outcomes(hits: list[int], k: int = 10) -> pd.DataFrame:
    """per_customer's frame for customers with the given hit counts, 10 relevant products each."""
    found = np.asarray(hits, dtype=float)
    return pd.DataFrame({"hit_rate": (found > 0).astype(float), "precision": found / k,
                         "recall": found / 10}, index=pd.Index([str(i) for i in range(len(hits))]))


def test_per_customer_figures_average_to_the_scores() -> None:
    truth = pd.DataFrame({"customer_id": ["a", "a", "a", "b", "c", "c"],
                          "stock_code": ["P1", "P2", "P3", "P4", "P5", "P6"]})
    recommended = pd.DataFrame({"customer_id": ["a", "a", "a", "b", "b", "c"],
                                "stock_code": ["P1", "P9", "P2", "P8", "P7", "P5"]})
    each = per_customer(recommended, truth, pd.Index(["a", "b", "c"]), 3)
    assert each.to_numpy().ravel() == pytest.approx([1, 2 / 3, 2 / 3, 0, 0, 0, 1, 1 / 3, 1 / 2])
    assert each.mean().to_dict() == pytest.approx(score(recommended, truth, each.index, 3))


def test_paired_bootstrap_against_a_baseline_is_paired() -> None:
    """400 customers: both hit the first 160, ours also the next 40 (hit-rates 0.5 and 0.4).
    Paired, the difference's spread comes only from the 40 customers where the two differ: its
    standard error is sqrt(0.1 x 0.9 / 400) = 0.015, a 95% interval of about +0.1 +- 0.029.
    Two independent groups would give sqrt((0.25 + 0.24) / 400) = 0.035, +- 0.069."""
    ours = outcomes([1] * 200 + [0] * 200)
    theirs = outcomes([1] * 160 + [0] * 240)
    versus = paired_versus(ours, {"base": theirs}, resamples=4000, seed=3)
    row = versus.loc["base"]
    assert list(versus.columns) == VERSUS_COLUMNS
    assert row["hit_rate_difference"] == pytest.approx(0.1)
    assert row["hit_rate_ratio"] == pytest.approx(1.25)
    half = (row["hit_rate_difference_high"] - row["hit_rate_difference_low"]) / 2
    assert 0.027 < half < 0.031  # 1.96 x 0.015 = 0.0294 (a 90% interval: 0.025)
    assert row["hit_rate_difference_low"] > 0.06  # ours is never behind on any resample's pairs
    assert row["hit_rate_ratio_low"] < 1.25 < row["hit_rate_ratio_high"]
    assert row["precision_difference"] == pytest.approx(0.01)
    # hits are 0 or 1 here, so precision is hits / 10 on every resample: the same resamples
    # for every figure give the same interval, divided by 10
    for end in ("_low", "_high"):
        assert row[f"precision_difference{end}"] == pytest.approx(
            row[f"hit_rate_difference{end}"] / 10)
    # the same seed draws the same resamples: every figure's interval is reproducible
    assert paired_versus(ours, {"base": theirs}, resamples=4000, seed=3).equals(versus)


def test_paired_bootstrap_edge_cases() -> None:
    same = outcomes([1, 0, 2, 0])
    versus = paired_versus(same, {"same": same, "none": outcomes([0, 0, 0, 0])},
                           resamples=200, seed=1)
    # identical outcomes on every customer: every resample's difference is 0
    assert versus.loc["same", ["hit_rate_difference", "hit_rate_difference_low",
                               "hit_rate_difference_high"]].tolist() == [0, 0, 0]
    # a baseline that never hits has no ratio, but a difference
    assert np.isnan(versus.loc["none", "hit_rate_ratio"])
    assert versus.loc["none", "hit_rate_difference"] == pytest.approx(0.5)
    off = paired_versus(same, {"none": outcomes([0, 0, 0, 0])}, resamples=0, seed=1)
    assert off.loc["none", "hit_rate_difference"] == pytest.approx(0.5)
    assert off.loc["none", ["hit_rate_difference_low", "hit_rate_difference_high"]].isna().all()


def test_a_ratio_over_a_rarely_hitting_baseline() -> None:
    """30 customers, the baseline hits 1: some resamples leave it at 0, so the ratio's upper end
    is infinite; the table shows it, the JSON has null, the differences are unaffected."""
    versus = paired_versus(outcomes([1] * 10 + [0] * 20), {"rare": outcomes([1] + [0] * 29)},
                           resamples=2000, seed=5)
    row = versus.loc["rare"]
    assert row["hit_rate_ratio"] == pytest.approx(10.0)
    assert 1 < row["hit_rate_ratio_low"] < 10 and np.isinf(row["hit_rate_ratio_high"])
    assert 0 < row["hit_rate_difference_low"] < 0.3 < row["hit_rate_difference_high"] < 0.5
    metrics = pd.DataFrame({"hit_rate": [1 / 3, 1 / 30], "precision": [0.0, 0.0],
                            "recall": [0.0, 0.0]}, index=[SEGMINT, "rare"])
    result = EvaluationResult(cutoff=CUTOFF, k=10, n_customers=30, n_train_customers=30,
                              metrics=metrics, versus=versus, resamples=2000)
    assert "10.000 (" in result.versus_table() and " to inf)" in result.versus_table()
    figures = json.loads(json.dumps(result.as_dict()), parse_constant=pytest.fail)
    assert figures["versus"]["rare"]["hit_rate_ratio_high"] is None
    assert figures["versus"]["rare"]["hit_rate_ratio"] == pytest.approx(10.0)


def test_no_intervals_when_none_are_drawn() -> None:
    versus = paired_versus(outcomes([1, 0, 1]), {"none": outcomes([0, 0, 0])}, resamples=0,
                           seed=1)
    metrics = pd.DataFrame({"hit_rate": [2 / 3, 0.0], "precision": [0.0, 0.0],
                            "recall": [0.0, 0.0]}, index=[SEGMINT, "none"])
    result = EvaluationResult(cutoff=CUTOFF, k=10, n_customers=3, n_train_customers=3,
                              metrics=metrics, versus=versus, resamples=0)
    table = result.versus_table()
    assert "bootstrap" not in table and "(" not in table.splitlines()[-1]
    assert table.splitlines()[-1].split()[1:3] == ["n/a", "+0.6667"]  # no ratio over 0 hits
    figures = json.loads(json.dumps(result.as_dict()), parse_constant=pytest.fail)
    assert figures["versus"]["none"]["hit_rate_ratio"] is None


def test_purchase_matrix_is_customers_by_products_of_invoice_counts() -> None:
    train = HAND.loc[HAND["ts"] < pd.Timestamp(CUTOFF)]
    repeat = lines_frame([line("a", "9", "2011-05-20 10:00", 2.0, stock_code="P1"),
                          line("a", "9", "2011-05-20 10:00", 2.0, stock_code="P1")])
    matrix, products = purchase_matrix(pd.concat([train, repeat]), TRAINED, ["POST"])
    assert matrix.shape == (3, 3) and list(products) == ["P1", "P2", "P3"]
    # a bought P1 in invoices 1 and 9 (two lines of invoice 9 count once)
    assert matrix.toarray().tolist() == [[2, 1, 0], [1, 0, 0], [0, 0, 1]]


def test_implicit_baselines_recommend_unbought_products_only() -> None:
    """Two groups of customers with disjoint tastes: both of implicit's models fill in the one
    product of its group each customer lacks, and never repeat what the customer has."""
    rows = []
    groups = {"x": ["A1", "A2", "A3", "A4"], "y": ["B1", "B2", "B3", "B4"]}
    invoice = 0
    for group, products in groups.items():
        for person in range(6):
            for position, product in enumerate(products):
                if position == person % 4:
                    continue  # each customer lacks one product of their group
                invoice += 1
                rows.append(line(f"{group}{person}", str(invoice), "2011-05-01 10:00", 1.0,
                                 stock_code=product))
    train = lines_frame(rows)
    customers = pd.Index(sorted(train["customer_id"].unique()))
    found = implicit_baselines(train, customers, customers, 1, [], seed=7, threads=1)
    assert set(found) == {ALS, BM25}
    owned = set(zip(train["customer_id"], train["stock_code"], strict=True))
    for name, top in found.items():
        assert len(top) == len(customers), name
        pairs = set(zip(top["customer_id"], top["stock_code"], strict=True))
        assert not pairs & owned, name
        lacking = {(f"{g}{p}", groups[g][p % 4]) for g in groups for p in range(6)}
        assert pairs == lacking, name


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
    assert list(result.metrics.index) == [SEGMINT, BASELINE, ALS, BM25]
    assert ((result.metrics >= 0) & (result.metrics <= 1)).all().all()
    assert f"hit_rate@{settings.evaluate.k}" in result.table()
    assert list(result.versus.index) == [BASELINE, ALS, BM25]
    for name, row in result.versus.iterrows():
        metrics = result.metrics
        difference = metrics.loc[SEGMINT, "recall"] - metrics.loc[name, "recall"]
        assert row["recall_difference"] == pytest.approx(difference)
        assert row["recall_difference_low"] <= difference <= row["recall_difference_high"]
    assert "paired bootstrap, 2,000 resamples" in result.versus_table()


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
    # CLV is on in these settings; the training run skips it (nothing scored reads it), so
    # pymc is never imported: the import-time report lists every module imported
    shown = run_segmint(*config, "evaluate", cwd=tmp_path,
                        env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert shown.returncode == 0, shown.stderr
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in shown.stderr.splitlines() if line.startswith("import time:")}
    assert "implicit" in imported and "pymc_marketing" not in imported and "pymc" not in imported
    # progress on stderr: the training run's stages, then the baselines
    assert "recommendations: " in shown.stderr and "fitting implicit's ALS" in shown.stderr
    assert "cutoff 2011-10-01:" in shown.stdout
    assert SEGMINT in shown.stdout and BASELINE in shown.stdout
    assert ALS in shown.stdout and BM25 in shown.stdout
    as_json = run_segmint(*config, "evaluate", "--json", cwd=tmp_path, env=env)
    assert as_json.returncode == 0, as_json.stderr
    figures = json.loads(as_json.stdout)
    assert figures["cutoff"] == "2011-10-01" and figures["k"] == 10
    assert set(figures["metrics"]) == {SEGMINT, BASELINE, ALS, BM25}
    assert set(figures["metrics"][ALS]) == {"hit_rate", "precision", "recall"}
    assert set(figures["versus"]) == {BASELINE, ALS, BM25}
    assert set(figures["versus"][ALS]) == set(VERSUS_COLUMNS)
    assert figures["resamples"] == 2000 and figures["confidence"] == 0.95
    assert "against each baseline on the same" in shown.stdout
    bad = run_segmint(*config, "evaluate", "--cutoff", "2011-13-01", cwd=tmp_path, env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    late = run_segmint(*config, "evaluate", "--cutoff", "2030-01-01", cwd=tmp_path, env=env)
    last = late.stderr.strip().splitlines()[-1]
    assert late.returncode == 1 and last.startswith("error: cutoff 2030-01-01 leaves no lines")
