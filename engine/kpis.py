"""KPIs a manager acts on, per segment of each scheme (SPEC.md Engine 6); pure functions.

For a window [since, as_of) of the lines (since None: all of them) and the segments of a run or
of a window (one row per customer with its class, RFM segment and persona), per segment:

- customers: the segment's customers;
- revenue_share: the segment's net value in the window (purchases minus returns) over the net
  value of all segmented customers (0 when that total is not positive);
- aov: average order value, purchase value over purchase invoices in the window (returns are not
  orders and do not lower it);
- repeat_rate: the share of the segment's customers with two or more purchase invoices in the
  window;
- retention_90d: of the segment's customers who had bought before as_of - 90 days, the share who
  bought again in [as_of - 90 days, as_of) (the whole history counts here, not only the window;
  NaN when none had bought by then);
- median_days_between_orders: the median gap, in days, between consecutive purchase days of the
  segment's customers in the window (several invoices on one day are one visit; NaN without
  repeat visits).

Only lines with a customer id and a product code count (as for RFM). The persona scheme reads a
`persona` column when the segments carry one, else the cluster's value tier (the name clusters
have until personas exist).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Final

import numpy as np
import pandas as pd

from engine.columns import KPI_COLUMNS
from engine.rfm import customer_lines, require_columns

# Scheme name (as exported) -> the segments column it groups by.
KPI_SCHEMES: Final = {"class": "customer_class", "rfm_segment": "rfm_segment",
                      "persona": "persona"}
PERSONA_FALLBACK: Final = "value_tier"
RETENTION_DAYS: Final = 90


def scheme_columns(segments: pd.DataFrame,
                   schemes: Mapping[str, str] | None = None) -> dict[str, str]:
    """Scheme -> segments column, the persona scheme falling back to the value tier."""
    chosen = dict(KPI_SCHEMES if schemes is None else schemes)
    if chosen.get("persona") == "persona" and "persona" not in segments.columns:
        chosen["persona"] = PERSONA_FALLBACK
    return chosen


def segment_kpis(lines: pd.DataFrame, segments: pd.DataFrame, *, as_of: date,
                 since: date | None = None, non_product_codes: Sequence[str] = (),
                 schemes: Mapping[str, str] | None = None,
                 retention_days: int = RETENTION_DAYS) -> pd.DataFrame:
    """KPI_COLUMNS, one row per scheme and segment (schemes in order, segments by name)."""
    columns = scheme_columns(segments, schemes)
    require_columns(segments, ["customer_id", *columns.values()], "segments frame")
    kept = customer_lines(lines, non_product_codes)
    end = pd.Timestamp(as_of)
    kept = kept[kept["ts"] < end]
    # Customer ids as integer codes for the groupings below: a window's million rows hash their
    # id strings once here, not once in each grouping; back to ids after.
    codes, ids = pd.factorize(kept["customer_id"])
    kept = kept.assign(customer_id=codes)
    in_window = kept if since is None else kept[kept["ts"] >= pd.Timestamp(since)]
    per_customer = _customer_figures(in_window, kept, end=end,
                                     retention_start=end - timedelta(days=retention_days))
    per_customer.index = ids[per_customer.index.to_numpy()]
    members = segments[["customer_id", *sorted(set(columns.values()))]].copy()
    members["customer_id"] = members["customer_id"].astype(str)
    members = members.merge(per_customer, left_on="customer_id", right_index=True, how="left")
    gaps = _visit_gaps(in_window)
    gaps["customer_id"] = ids[gaps["customer_id"].to_numpy()]
    total = float(members["net"].fillna(0.0).sum())
    frames = []
    for scheme, column in columns.items():
        frames.append(_scheme_kpis(scheme, column, members, gaps, total))
    if not frames:
        return pd.DataFrame(columns=KPI_COLUMNS)
    return pd.concat(frames, ignore_index=True)[KPI_COLUMNS]


def _customer_figures(window: pd.DataFrame, history: pd.DataFrame, *, end: pd.Timestamp,
                      retention_start: pd.Timestamp) -> pd.DataFrame:
    """Per customer: net value, purchase value and purchase invoices in the window; whether they
    bought before retention_start (in the whole history) and in [retention_start, end)."""
    purchases = window[~window["is_return"].astype(bool)]
    figures = pd.DataFrame({
        "net": window.groupby("customer_id")["net"].sum(),
        "purchase_value": purchases.groupby("customer_id")["net"].sum(),
        "orders": purchases.groupby("customer_id")["invoice"].nunique(),
    })
    bought = history[~history["is_return"].astype(bool)]
    before = bought.loc[bought["ts"] < retention_start, "customer_id"].unique()
    since = bought.loc[(bought["ts"] >= retention_start) & (bought["ts"] < end),
                       "customer_id"].unique()
    index = figures.index.union(pd.Index(before)).union(pd.Index(since))
    figures = figures.reindex(index)
    figures[["net", "purchase_value", "orders"]] = figures[
        ["net", "purchase_value", "orders"]].fillna(0.0)
    figures["bought_before"] = figures.index.isin(before)
    figures["bought_since"] = figures.index.isin(since)
    return figures


def _visit_gaps(window: pd.DataFrame) -> pd.DataFrame:
    """customer_id, gap_days: days between consecutive purchase days of each customer."""
    purchases = window[~window["is_return"].astype(bool)]
    days = (purchases.assign(day=purchases["ts"].dt.normalize())[["customer_id", "day"]]
            .drop_duplicates().sort_values(["customer_id", "day"]))
    gap = days.groupby("customer_id")["day"].diff().dt.days
    return pd.DataFrame({"customer_id": days["customer_id"], "gap_days": gap}).dropna()


def _scheme_kpis(scheme: str, column: str, members: pd.DataFrame, gaps: pd.DataFrame,
                 total: float) -> pd.DataFrame:
    segment = members[column].astype(object).where(members[column].notna(), "(none)").astype(str)
    grouped = members.assign(segment=segment).groupby("segment", sort=True)
    customers = grouped.size()
    purchase_value = grouped["purchase_value"].sum()
    orders = grouped["orders"].sum()
    base = grouped["bought_before"].sum()
    retained = members.assign(segment=segment,
                              kept=members["bought_before"].fillna(False).astype(bool)
                              & members["bought_since"].fillna(False).astype(bool)
                              ).groupby("segment")["kept"].sum()
    segment_of = pd.Series(segment.to_numpy(), index=members["customer_id"].to_numpy())
    gap_segments = gaps["customer_id"].map(segment_of)
    median_gap = gaps["gap_days"].groupby(gap_segments).median()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame({
            "scheme": scheme,
            "segment": customers.index,
            "customers": customers.to_numpy().astype("int64"),
            "revenue_share": (grouped["net"].sum() / total).round(4).to_numpy()
            if total > 0 else 0.0,
            "aov": (purchase_value / orders.where(orders > 0)).round(2).to_numpy(),
            "repeat_rate": (grouped["orders"].apply(lambda o: float((o >= 2).mean())))
            .round(4).to_numpy(),
            "retention_90d": (retained / base.where(base > 0)).astype(float).round(4).to_numpy(),
            "median_days_between_orders": median_gap.reindex(customers.index).to_numpy(),
        })
    return out
