"""engine/clv_backtest.py: the holdout arithmetic by hand, and a window too short to refit is a
note in a published CLV."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.clv import customer_value
from engine.clv_backtest import compare_holdout, describe_backtest
from engine.settings import ClvSettings
from tests.engine.realdata import CDNOW_END, cdnow_lines


def test_backtest_arithmetic_by_hand() -> None:
    frame = pd.DataFrame({
        "frequency": [0, 0, 1, 9],
        "predicted": [0.5, 0.5, 2.0, 3.0],
        "actual": [0.0, 1.0, 1.0, 5.0],
        "customer_class": ["Low", "Low", "High", "High"],
    })
    out = compare_holdout(frame, ["customer_class"])
    overall = out["overall"]
    assert overall["predicted"] == 6.0 and overall["actual"] == 7.0
    assert overall["total_error"] == -1.0
    assert overall["total_error_pct"] == pytest.approx(-100 / 7, abs=1e-4)
    assert overall["mae"] == pytest.approx((0.5 + 0.5 + 1 + 2) / 4)
    assert overall["bias"] == pytest.approx(-0.25)
    high = out["by_customer_class"]["High"]
    assert (high["customers"], high["total_error"], high["mae"]) == (2, -1.0, 1.5)
    low = out["by_customer_class"]["Low"]
    assert (low["total_error"], low["bias"]) == (0.0, 0.0)
    calibration = {row["frequency"]: row for row in out["calibration"]}
    assert list(calibration) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert calibration["0"] == {"frequency": "0", "customers": 2, "predicted": 0.5, "actual": 0.5}
    assert calibration["7+"]["customers"] == 1 and calibration["7+"]["actual"] == 5.0
    assert calibration["3"] == {"frequency": "3", "customers": 0, "predicted": None,
                                "actual": None}


def test_window_too_short_for_the_backtest_is_a_note() -> None:
    lines = cdnow_lines()
    lines = lines[lines["ts"] <= pd.Timestamp(CDNOW_END)]
    settings = ClvSettings(backtest_days=300)  # cutoff before the first purchase (1997-01-01)
    result = customer_value(lines, as_of=CDNOW_END, settings=settings)
    assert result.customers is not None  # the CLV itself is published
    assert "window too short" in result.backtest["note"]
    assert any("window too short" in note for note in result.notes)


def test_describe_backtest_reads_the_stored_figures() -> None:
    frame = pd.DataFrame({"frequency": [0, 2], "predicted": [0.5, 2.5], "actual": [0.0, 2.0]})
    stored = {"cutoff": "2020-01-01", "holdout_days": 90, **compare_holdout(frame)}
    text = describe_backtest(stored)
    assert text[0] == ("backtest: refit to 2020-01-01, next 90 days: 2 customers, predicted 3.0 "
                       "purchases, actual 2 (error +1.0, +50.0 %), MAE 0.500, bias +0.500")
    assert text[2:] == ["      0:      1  0.500 / 0.000", "      2:      1  2.500 / 2.000"]
    # A window too short has only a note, which describe_fit prints with the other notes.
    assert describe_backtest({"cutoff": "2020-01-01", "holdout_days": 90, "note": "x"}) == []
