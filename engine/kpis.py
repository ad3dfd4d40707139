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
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import numpy as np
import pandas as pd

from engine.columns import KPI_COLUMNS
from engine.rfm import (
    CustomerLines,
    by_code,
    coded_customer_lines,
    codes_index,
    distinct_invoices,
    require_columns,
)

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


@dataclass(frozen=True)
class CustomerKpis:
    """What the KPIs of a window need per customer, whatever the segments: ``figures`` (indexed
    by customer id: net, purchase_value, orders, bought_before, bought_since) and ``gaps``
    (customer_id, gap_days: days between consecutive purchase days in the window). Made once per
    window (customer_kpis); the KPIs of any selection of segments are then a grouping of these
    rows (kpis_of_segments), not a pass over the window's lines."""

    figures: pd.DataFrame
    gaps: pd.DataFrame


def segment_kpis(lines: pd.DataFrame, segments: pd.DataFrame, *, as_of: date,
                 since: date | None = None, non_product_codes: Sequence[str] = (),
                 schemes: Mapping[str, str] | None = None,
                 retention_days: int = RETENTION_DAYS) -> pd.DataFrame:
    """KPI_COLUMNS, one row per scheme and segment (schemes in order, segments by name)."""
    coded = coded_customer_lines(lines, non_product_codes)
    return kpis_of_segments(customer_kpis(coded, as_of=as_of, since=since,
                                          retention_days=retention_days),
                            segments, schemes=schemes)


def customer_kpis(coded: CustomerLines, *, as_of: date, since: date | None = None,
                  retention_days: int = RETENTION_DAYS) -> CustomerKpis:
    """The per-customer figures of the window [since, as_of) of coded lines (engine.rfm's
    coded_customer_lines: customer lines only, customers as integer codes), the history before
    since counting for retention only."""
    end = pd.Timestamp(as_of).to_datetime64()
    retention_start = (pd.Timestamp(as_of) - timedelta(days=retention_days)).to_datetime64()
    kept = coded.ts < end
    window = kept if since is None else kept & (coded.ts >= pd.Timestamp(since).to_datetime64())
    bought = kept & ~coded.is_return
    purchases = window & ~coded.is_return
    customer = coded.customer
    # pandas' grouped sums (compensated), as the RFM table's monetary is summed.
    n = len(coded.ids)
    net = codes_index(by_code(coded.net[window], customer[window], n).sum())
    purchase_value = codes_index(by_code(coded.net[purchases], customer[purchases], n).sum())
    orders = pd.Series(distinct_invoices(customer[purchases], coded.invoice[purchases], n))
    before = np.bincount(customer[bought & (coded.ts < retention_start)], minlength=n) > 0
    recent = np.bincount(customer[bought & (coded.ts >= retention_start)], minlength=n) > 0
    in_window = np.zeros(n, dtype=bool)
    in_window[net.index.to_numpy(dtype=np.int64)] = True
    index = np.flatnonzero(in_window | before | recent)  # customer codes, in id order
    figures = pd.DataFrame({
        "net": net.reindex(index).fillna(0.0).to_numpy(),
        "purchase_value": purchase_value.reindex(index).fillna(0.0).to_numpy(),
        "orders": orders.to_numpy()[index].astype(float),
        "bought_before": before[index],
        "bought_since": recent[index],
    }, index=pd.Index(coded.ids[index], name="customer_id"))
    return CustomerKpis(figures, _visit_gaps(coded, purchases))


def _visit_gaps(coded: CustomerLines, purchases: np.ndarray) -> pd.DataFrame:
    """customer_id, gap_days: days between consecutive purchase days of each customer (several
    invoices on one day are one visit)."""
    days = coded.ts[purchases].astype("datetime64[D]").astype(np.int64)
    customer = coded.customer[purchases]
    if not len(days):
        return pd.DataFrame({"customer_id": pd.Series(dtype=object),
                             "gap_days": pd.Series(dtype=float)})
    first = int(days.min())
    span = int(days.max()) - first + 1
    visits = np.sort(customer * span + (days - first))  # by customer, then day
    visits = visits[np.concatenate(([True], visits[1:] != visits[:-1]))]  # one per day
    who, day = visits // span, visits % span
    follows = who[1:] == who[:-1]
    return pd.DataFrame({"customer_id": coded.ids[who[1:][follows]],
                         "gap_days": np.diff(day)[follows].astype(float)})


def kpis_of_segments(kpis: CustomerKpis, segments: pd.DataFrame, *,
                     schemes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """segment_kpis' table for the customers of segments (one row per customer with its
    segment in each scheme's column) from their window's customer_kpis."""
    columns = scheme_columns(segments, schemes)
    require_columns(segments, ["customer_id", *columns.values()], "segments frame")
    members = segments[["customer_id", *sorted(set(columns.values()))]].copy()
    members["customer_id"] = members["customer_id"].astype(str)
    members = members.merge(kpis.figures, left_on="customer_id", right_index=True, how="left")
    total = float(members["net"].fillna(0.0).sum())
    # Each gap's member row, found once for every scheme (-1: not a member).
    gap_rows = pd.Index(members["customer_id"]).get_indexer(kpis.gaps["customer_id"])
    gaps = kpis.gaps["gap_days"].to_numpy()[gap_rows >= 0]
    gap_rows = gap_rows[gap_rows >= 0]
    frames = []
    for scheme, column in columns.items():
        frames.append(_scheme_kpis(scheme, column, members, (gap_rows, gaps), total))
    if not frames:
        return pd.DataFrame(columns=KPI_COLUMNS)
    return pd.concat(frames, ignore_index=True)[KPI_COLUMNS]


def _scheme_kpis(scheme: str, column: str, members: pd.DataFrame,
                 gaps: tuple[np.ndarray, np.ndarray], total: float) -> pd.DataFrame:
    """One scheme's rows; gaps: (member row, gap days) of every visit gap of the members."""
    segment = members[column].astype(object).where(members[column].notna(), "(none)").astype(str)
    grouped = members.assign(segment=segment).groupby("segment", sort=True)
    customers = grouped.size()
    purchase_value = grouped["purchase_value"].sum()
    orders = grouped["orders"].sum()
    base = grouped["bought_before"].sum()
    retained = members.assign(segment=segment,
                              # eq(True): a missing flag is False (fillna on an object
                              # column warns of downcasting in pandas 2.2)
                              kept=members["bought_before"].eq(True)
                              & members["bought_since"].eq(True)
                              ).groupby("segment")["kept"].sum()
    gap_rows, gap_days = gaps
    median_gap = pd.Series(gap_days).groupby(segment.to_numpy()[gap_rows]).median()
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
