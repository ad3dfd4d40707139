"""Pure figure builders of the "Value & risk" page: frames and dicts in, plotly Figures out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures import _layout, empty_figure
from engine.clv import BgNbdParams, p_alive
from engine.columns import CLV_COLUMNS

# The at-risk table and its CSV: SPEC.md's `export clv` columns, then who they are and what they
# spent (the table's order: most past spend first).
AT_RISK_COLUMNS = [*CLV_COLUMNS, "customer_class", "rfm_segment", "monetary"]
RISK_COLOURS = {"high": "#e5532c", "medium": "#f6a609", "low": "#00a389"}
UNIT_NAMES = {"W": "weeks", "D": "days"}


def clv_distribution_figure(clv: pd.DataFrame, title: str = "365-day CLV per customer") \
        -> go.Figure:
    """Histogram of clv_365d by churn-risk band (the top 1 % folded into the last bin)."""
    if clv.empty:
        return empty_figure("No CLV in this run", title)
    cap = float(np.quantile(clv["clv_365d"], 0.99)) or 1.0
    figure = go.Figure()
    for band in ("low", "medium", "high"):
        values = clv.loc[clv["churn_risk"] == band, "clv_365d"].clip(upper=cap)
        if len(values):
            figure.add_trace(go.Histogram(x=values, name=f"{band} churn risk", nbinsx=40,
                                          marker_color=RISK_COLOURS[band], opacity=0.85))
    figure.update_layout(barmode="stack", xaxis_title=f"predicted value, next 365 days (values "
                         f"above {cap:,.0f} in the last bin)", yaxis_title="customers")
    return _layout(figure, title)


def p_alive_matrix_figure(bgnbd: Mapping[str, float] | None, *, T: float, max_frequency: int,
                          time_unit: str, title: str = "Probability alive by recency and "
                          "frequency") -> go.Figure:
    """P(alive) from the fitted BG/NBD for a customer observed for T time units, over every
    recency (time of the last purchase since the first) and frequency (repeat purchase days)."""
    if not bgnbd or T <= 0:
        return empty_figure("No fitted BG/NBD in this run", title)
    params = BgNbdParams(**{name: float(bgnbd[name]) for name in ("r", "alpha", "a", "b")})
    recency = np.linspace(0, T, 40)
    frequency = np.arange(0, max(max_frequency, 1) + 1)
    grid_x, grid_t = np.meshgrid(frequency, recency)
    alive = p_alive(params, grid_x, grid_t, np.full(grid_x.shape, T))
    unit = UNIT_NAMES.get(time_unit, time_unit)
    figure = go.Figure(go.Heatmap(
        z=alive, x=frequency, y=recency, zmin=0, zmax=1, colorscale="RdYlGn",
        colorbar={"title": "P(alive)"},
        hovertemplate=f"frequency %{{x}}<br>recency %{{y:.1f}} {unit}<br>P(alive) %{{z:.2f}}"
                      "<extra></extra>"))
    figure.update_layout(xaxis_title="frequency (repeat purchase days)",
                         yaxis_title=f"recency ({unit} from first to last purchase)")
    return _layout(figure, f"{title} (T = {T:.0f} {unit})", height=380)


def calibration_figure(backtest: Mapping[str, Any] | None,
                       title: str = "Backtest: predicted and actual purchases in the holdout") \
        -> go.Figure:
    """Mean predicted and actual holdout purchases by calibration-period frequency (0 .. 7+)."""
    rows = [row for row in (backtest or {}).get("calibration", []) if row.get("customers")]
    if not rows:
        note = (backtest or {}).get("note") or "No backtest in this run"
        return empty_figure(note, title)
    labels = [row["frequency"] for row in rows]
    figure = go.Figure([
        go.Bar(x=labels, y=[row["actual"] for row in rows], name="actual",
               marker_color="#6c757d",
               customdata=[row["customers"] for row in rows],
               hovertemplate="frequency %{x}: %{y:.2f} actual (%{customdata} customers)"
                             "<extra></extra>"),
        go.Bar(x=labels, y=[row["predicted"] for row in rows], name="predicted (BG/NBD)",
               marker_color="#2c7be5",
               hovertemplate="frequency %{x}: %{y:.2f} predicted<extra></extra>"),
    ])
    days = (backtest or {}).get("holdout_days")
    figure.update_xaxes(type="category")  # "0".."6" would otherwise make a numeric axis sans 7+
    # A short axis title: a long one ran up into the figure's title.
    figure.update_layout(barmode="group", xaxis_title="repeat purchase days before the cutoff",
                         yaxis_title="mean purchases")
    return _layout(figure, title, height=340, note=f"per customer in the {days} days after the "
                   "cutoff, by how often they had bought before it")


def at_risk_rows(clv: pd.DataFrame, segments: pd.DataFrame, *, limit: int = 500) -> pd.DataFrame:
    """Valuable customers at high churn risk: churn_risk "high", most past spend first;
    AT_RISK_COLUMNS, the CLV figures as stored (the grid formats them for reading)."""
    risky = clv[clv["churn_risk"] == "high"]
    joined = risky.merge(segments[["customer_id", "customer_class", "rfm_segment", "monetary"]],
                         on="customer_id", how="left")
    joined = joined.sort_values(["monetary", "clv_365d"], ascending=False).head(limit)
    return joined[AT_RISK_COLUMNS].reset_index(drop=True)
