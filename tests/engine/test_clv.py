"""engine/clv.py: the purchase-day summary, the closed forms, the published CDNOW figures and
the inputs a fit cannot use."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from engine.clv import (
    BgNbdParams,
    GammaGammaParams,
    customer_value,
    expected_order_value,
    expected_purchases,
    fit_models,
    p_alive,
    purchase_days,
    purchase_summary,
    score_customers,
    summarize_days,
)
from engine.settings import ClvSettings
from tests.engine.factories import line, lines_frame
from tests.engine.realdata import CDNOW_END, cdnow_lines

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
PAPER = BgNbdParams(**PUBLISHED_BGNBD)


def hand_lines() -> pd.DataFrame:
    return lines_frame([
        line("A", "1", "2020-01-01 09:00", 10.0),
        line("A", "2", "2020-01-01 17:00", 5.0),       # same day: one purchase of 15
        line("A", "3", "2020-01-08 10:00", 20.0),
        line("A", "4", "2020-01-15 10:00", 30.0),
        line("A", "C5", "2020-01-15 11:00", -30.0),     # a return is never a purchase
        line("A", "6", "2020-01-20 10:00", 99.0, stock_code="POST"),  # not a product
        line(None, "7", "2020-01-21 10:00", 50.0),      # no customer
        line("B", "8", "2020-01-22 10:00", 40.0),
        line("C", "9", "2020-02-05 10:00", 40.0),       # after as_of
    ])


def test_purchase_days_sum_each_customers_day_in_order() -> None:
    days = purchase_days(hand_lines(), non_product_codes=["POST"])
    assert days["customer_id"].tolist() == ["A", "A", "A", "B", "C"]
    assert days["day"].dt.strftime("%m-%d").tolist() == ["01-01", "01-08", "01-15", "01-22",
                                                          "02-05"]
    assert days["value"].tolist() == [15.0, 20.0, 30.0, 40.0, 40.0]
    assert purchase_days(hand_lines().head(0)).empty


def test_summary_counts_purchase_days_in_weeks() -> None:
    summary = purchase_summary(hand_lines(), as_of=date(2020, 1, 29), time_unit="W",
                               non_product_codes=["POST"])
    assert summary["customer_id"].tolist() == ["A", "B"]
    a, b = summary.iloc[0], summary.iloc[1]
    assert (a["frequency"], a["recency"], a["T"]) == (2, 2.0, 4.0)
    assert a["monetary_value"] == pytest.approx(25.0)  # repeat days 20 and 30; first day left out
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0.0, 1.0, 0.0)


def test_summary_in_days_and_a_purchase_on_as_of_counts() -> None:
    summary = purchase_summary(hand_lines(), as_of=date(2020, 1, 22), time_unit="D",
                               non_product_codes=["POST"])
    a, b = summary.set_index("customer_id").loc["A"], summary.set_index("customer_id").loc["B"]
    assert (a["frequency"], a["recency"], a["T"]) == (2, 14.0, 21.0)
    assert (b["frequency"], b["recency"], b["T"]) == (0, 0.0, 0.0)


def test_published_expectation_from_the_papers_parameters() -> None:
    # Fader, Hardie & Lee (2005): 1.226 purchases in 39 weeks for x = 2, t_x = 30.43, T = 38.86.
    assert expected_purchases(PAPER, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=0.001)
    assert expected_purchases(PAPER, 0, 2, 30.43, 38.86) == 0.0
    # p_alive: 1 without a repeat purchase; lower the longer the silence.
    alive = p_alive(PAPER, [0, 2, 2], [0, 30.43, 5.0], [38.86, 38.86, 38.86])
    assert alive[0] == 1.0 and 0 < alive[2] < alive[1] < 1


def test_gamma_gamma_expectation_by_hand() -> None:
    params = GammaGammaParams(p=6.0, q=4.0, v=15.0)
    # p (v + x m) / (p x + q - 1) = 6 (15 + 2 * 30) / (12 + 3) = 30
    assert expected_order_value(params, 2, 30.0) == pytest.approx(30.0)
    assert params.population_mean == pytest.approx(30.0)  # p v / (q - 1)


def test_cdnow_reference_figures_within_one_percent() -> None:
    summary = purchase_summary(cdnow_lines(), as_of=CDNOW_END, time_unit="W")
    assert len(summary) == 2357
    fitted = fit_models(summary, min_repeat_customers=20)
    for name, value in PUBLISHED_BGNBD.items():
        assert getattr(fitted.bgnbd, name) == pytest.approx(value, rel=0.01), name
    for name, value in PUBLISHED_GG.items():
        assert getattr(fitted.gamma_gamma, name) == pytest.approx(value, rel=0.01), name
    assert expected_purchases(fitted.bgnbd, 39, 2, 30.43, 38.86) == pytest.approx(1.226, rel=0.01)


def test_scores_bands_and_flags() -> None:
    summary = pd.DataFrame({"customer_id": ["new", "old", "loyal"], "frequency": [0, 3, 10],
                            "recency": [0.0, 2.0, 50.0], "T": [1.0, 52.0, 52.0],
                            "monetary_value": [0.0, 20.0, 40.0]})
    out = score_customers(summary, PAPER, GammaGammaParams(6.25, 3.74, 15.44),
                          settings=ClvSettings(), population_order_value=35.2)
    rows = out.set_index("customer_id")
    assert rows.loc["new", "history"] == "short"
    assert rows.loc["new", "order_value_source"] == "population"
    assert rows.loc["new", "expected_order_value"] == 35.2
    assert rows.loc["loyal", "history"] == "full"
    assert rows.loc["old", "churn_risk"] == "high" and rows.loc["loyal", "churn_risk"] == "low"
    assert rows.loc["loyal", "clv_365d"] > rows.loc["old", "clv_365d"] > 0
    # The discounted 365-day value is below the undiscounted expectation times the order value.
    loyal = rows.loc["loyal"]
    assert loyal["clv_365d"] < loyal["expected_purchases_365d"] * loyal["expected_order_value"]
    assert (out["expected_purchases_365d"] >= out["expected_purchases_90d"]).all()


def test_cdnow_run_scores_everyone_and_backtests() -> None:
    lines = cdnow_lines()
    lines = lines[lines["ts"] <= pd.Timestamp(CDNOW_END)]
    result = customer_value(lines, as_of=CDNOW_END, settings=ClvSettings())
    assert result.customers is not None and len(result.customers) == 2357
    assert result.customers["p_alive"].between(0, 1).all()
    assert np.isfinite(result.customers["clv_365d"]).all()
    backtest = result.backtest
    assert backtest["cutoff"] == "1997-07-02" and backtest["overall"]["customers"] == 2357
    # The model tracks the held-out quarter within 25 % in total.
    assert abs(backtest["overall"]["total_error_pct"]) < 25
    params = result.params()
    assert set(params["bgnbd"]) == {"r", "alpha", "a", "b"}
    assert set(params["gamma_gamma"]) == {"p", "q", "v"}


def test_only_one_time_buyers_is_a_note_not_an_error() -> None:
    lines = lines_frame([line(f"C{i}", str(i), f"2020-01-{i + 1:02d} 10:00", 10.0)
                         for i in range(20)])
    result = customer_value(lines, as_of=date(2020, 2, 1), settings=ClvSettings())
    assert result.customers is None and result.bgnbd is None
    assert "0 customer(s) with a repeat purchase day" in result.notes[0]
    assert result.params()["bgnbd"] is None


def test_one_customer_is_a_note() -> None:
    lines = lines_frame([line("A", "1", "2020-01-01", 10.0), line("A", "2", "2020-01-09", 10.0)])
    result = customer_value(lines, as_of=date(2020, 2, 1), settings=ClvSettings())
    assert result.customers is None and "1 customer(s)" in result.notes[0]


def test_summarize_days_of_nothing_is_empty() -> None:
    empty = pd.DataFrame({"customer_id": pd.Series(dtype=object),
                          "day": pd.Series(dtype="datetime64[ns]"),
                          "value": pd.Series(dtype=float)})
    assert summarize_days(empty, as_of=date(2020, 1, 1)).empty
