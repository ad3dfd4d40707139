"""The CLV backtest: refit both models on the purchase days before ``as_of - backtest_days``,
predict each customer's purchase days in the held-out days, compare with what they did.

Errors overall and per group (class, RFM segment), and the calibration table of Fader, Hardie &
Lee (2005), figure 2: mean predicted against actual holdout purchases by calibration-period
frequency 0 .. 6 and 7+. A window too short to refit is a note, never an error.
Pure functions, ``as_of`` always passed in; built on engine/clv.py's summary, fit and closed forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from engine.clv import (
    UNIT_DAYS,
    ClvFitError,
    expected_purchases,
    fit_models,
    rounded_params,
    summarize_days,
)
from engine.settings import ClvSettings

CALIBRATION_MAX = 7  # the calibration table's last row is "7+" (Fader, Hardie & Lee, figure 2)


def _errors(frame: pd.DataFrame) -> dict[str, Any]:
    predicted = frame["predicted"].to_numpy(dtype=float)
    actual = frame["actual"].to_numpy(dtype=float)
    total_predicted, total_actual = float(predicted.sum()), float(actual.sum())
    error = total_predicted - total_actual
    return {
        "customers": len(frame),
        "predicted": round(total_predicted, 4),
        "actual": round(total_actual, 4),
        "total_error": round(error, 4),
        "total_error_pct": round(100 * error / total_actual, 4) if total_actual else None,
        "mae": round(float(np.abs(predicted - actual).mean()), 6) if len(frame) else None,
        "bias": round(float((predicted - actual).mean()), 6) if len(frame) else None,
    }


def compare_holdout(frame: pd.DataFrame, group_columns: Sequence[str] = ()) -> dict[str, Any]:
    """Predicted against actual holdout purchases. ``frame``: frequency (calibration period),
    predicted, actual, and the ``group_columns``. Overall and per group: customers, predicted
    and actual totals, total error (predicted - actual) and in % of actual, mean absolute error,
    bias (mean predicted - actual); and the calibration table: mean predicted and actual per
    calibration frequency 0 .. 6 and 7+."""
    out: dict[str, Any] = {"overall": _errors(frame)}
    for column in group_columns:
        out[f"by_{column}"] = {str(name): _errors(group)
                               for name, group in frame.groupby(column, sort=True)}
    bucket = np.minimum(frame["frequency"].to_numpy(dtype=np.int64), CALIBRATION_MAX)
    table = []
    for level in range(CALIBRATION_MAX + 1):
        rows = frame[bucket == level]
        table.append({
            "frequency": f"{level}+" if level == CALIBRATION_MAX else str(level),
            "customers": len(rows),
            "predicted": round(float(rows["predicted"].mean()), 6) if len(rows) else None,
            "actual": round(float(rows["actual"].mean()), 6) if len(rows) else None,
        })
    out["calibration"] = table
    return out


def backtest(days: pd.DataFrame, *, as_of: date, settings: ClvSettings,
             groups: pd.DataFrame | None = None) -> dict[str, Any]:
    """Refit on the purchase days up to the cutoff ``as_of - backtest_days``, predict each of
    those customers' purchase days in the held-out days (cutoff, as_of], compare with what they
    did.
    ``groups``: customer_id + columns to break the errors down by (class, RFM segment); customers
    not in it are counted under "(none)". A window too short gives {"note": ...}."""
    cutoff = as_of - timedelta(days=settings.backtest_days)
    base = {"cutoff": cutoff.isoformat(), "holdout_days": settings.backtest_days}
    if days.empty or days["day"].min() > pd.Timestamp(cutoff):
        return {**base, "note": f"window too short: no purchase before the backtest's cutoff "
                                f"{cutoff} (as_of {as_of} minus clv.backtest_days = "
                                f"{settings.backtest_days})"}
    calibration = summarize_days(days, as_of=cutoff, time_unit=settings.time_unit)
    try:
        fitted = fit_models(calibration, min_repeat_customers=settings.min_repeat_customers,
                            what="backtest")
    except ClvFitError as exc:
        return {**base, "note": f"window too short for the backtest: {exc}"}
    unit = UNIT_DAYS[settings.time_unit]
    holdout = days[(days["day"] > pd.Timestamp(cutoff)) & (days["day"] <= pd.Timestamp(as_of))]
    actual = holdout.groupby("customer_id").size()
    frame = pd.DataFrame({
        "customer_id": calibration["customer_id"],
        "frequency": calibration["frequency"],
        "predicted": expected_purchases(fitted.bgnbd, settings.backtest_days / unit,
                                        calibration["frequency"], calibration["recency"],
                                        calibration["T"]),
        "actual": actual.reindex(calibration["customer_id"]).fillna(0).to_numpy(dtype=float),
    })
    group_columns: list[str] = []
    if groups is not None:
        group_columns = [column for column in groups.columns if column != "customer_id"]
        frame = frame.merge(groups, on="customer_id", how="left")
        frame[group_columns] = frame[group_columns].astype(object).fillna("(none)")
    return {**base, "bgnbd": rounded_params(vars(fitted.bgnbd)),
            **compare_holdout(frame, group_columns)}


def describe_backtest(stored: dict[str, Any]) -> list[str]:
    """A stored backtest (ClvResult.backtest) as lines for a person; none without one."""
    lines: list[str] = []
    overall = stored.get("overall")
    if overall:
        pct = overall["total_error_pct"]
        lines.append(
            f"backtest: refit to {stored['cutoff']}, next {stored['holdout_days']} days: "
            f"{overall['customers']} customers, predicted {overall['predicted']:.1f} purchases, "
            f"actual {overall['actual']:.0f} (error {overall['total_error']:+.1f}"
            f"{'' if pct is None else f', {pct:+.1f} %'}), MAE {overall['mae']:.3f}, "
            f"bias {overall['bias']:+.3f}")
        lines.append("  calibration (frequency: customers, mean predicted / actual):")
        for row in stored.get("calibration", []):
            if row["customers"]:
                lines.append(f"    {row['frequency']:>3}: {row['customers']:>6}  "
                             f"{row['predicted']:.3f} / {row['actual']:.3f}")
    return lines
