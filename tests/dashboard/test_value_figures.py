"""The Value & risk page's pure figures and its at-risk table."""

from __future__ import annotations

import pandas as pd

from dashboard.figures_value import (
    at_risk_rows,
    calibration_figure,
    clv_distribution_figure,
    p_alive_matrix_figure,
)
from engine.columns import CLV_COLUMNS

PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def clv_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"], "frequency": [0, 3, 8, 2],
        "recency": [0.0, 2.0, 30.0, 5.0], "T": [10.0, 40.0, 40.0, 40.0],
        "p_alive": [1.0, 0.1, 0.95, 0.2], "expected_purchases_90d": [0.1, 0.05, 2.0, 0.1],
        "expected_purchases_365d": [0.3, 0.1, 7.0, 0.3],
        "expected_order_value": [30.0, 50.0, 40.0, 20.0], "clv_365d": [8.0, 4.0, 250.0, 5.0],
        "churn_risk": ["low", "high", "low", "high"],
    })


def test_clv_distribution_has_one_trace_per_band_present() -> None:
    figure = clv_distribution_figure(clv_frame())
    assert [trace.name for trace in figure.data] == ["low churn risk", "high churn risk"]
    assert clv_distribution_figure(clv_frame().head(0)).layout.annotations  # empty: says why


def test_p_alive_matrix_falls_with_the_silence() -> None:
    figure = p_alive_matrix_figure(PAPER, T=40.0, max_frequency=5, time_unit="W")
    z = figure.data[0].z
    assert z.shape == (40, 6)
    assert (z[:, 0] == 1.0).all()            # no repeat purchase: alive by the model
    assert z[0, 3] < z[-1, 3]                # frequency 3: last purchase long ago < recently
    assert p_alive_matrix_figure(None, T=40.0, max_frequency=5, time_unit="W").layout.annotations


def test_calibration_figure_bars_and_the_note_when_missing() -> None:
    backtest = {"holdout_days": 90, "calibration": [
        {"frequency": "0", "customers": 10, "predicted": 0.1, "actual": 0.2},
        {"frequency": "1", "customers": 0, "predicted": None, "actual": None},
        {"frequency": "7+", "customers": 2, "predicted": 3.0, "actual": 2.5}]}
    figure = calibration_figure(backtest)
    assert list(figure.data[0].x) == ["0", "7+"] and list(figure.data[0].y) == [0.2, 2.5]
    assert list(figure.data[1].y) == [0.1, 3.0]
    assert figure.layout.xaxis.type == "category"  # else "7+" vanishes from a numeric axis
    empty = calibration_figure({"note": "window too short: no purchase before the cutoff"})
    assert "window too short" in empty.layout.annotations[0].text


def test_at_risk_rows_are_high_risk_most_spend_first() -> None:
    segments = pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
                             "customer_class": ["New", "High value", "High value", "Ordinary"],
                             "rfm_segment": ["New", "At-Risk", "VIP", "Hibernating"],
                             "monetary": [30.0, 900.0, 2000.0, 100.0]})
    rows = at_risk_rows(clv_frame(), segments)
    assert rows["customer_id"].tolist() == ["b", "d"]
    assert rows.loc[0, "customer_class"] == "High value"
    # SPEC.md's `export clv` columns first (the page's CSV), the figures as stored.
    assert list(rows.columns) == [*CLV_COLUMNS, "customer_class", "rfm_segment", "monetary"]
    assert rows.loc[1, "p_alive"] == 0.2 and rows.loc[1, "T"] == 40.0
