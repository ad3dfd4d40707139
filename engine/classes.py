"""The six customer classes of the CRM paper; pure functions, thresholds from settings.classes.

First match wins, in this order:

1. New: signed up within ``new_days`` before ``as_of`` (sign-up date from the customers frame;
   when unknown, the first purchase found in the history handed in);
2. Negative: no net purchase in the window (net monetary <= 0);
3. Most Growth: net spend in the last ``growth_days`` before ``as_of`` is at least
   ``growth_factor`` times the customer's earlier average per ``growth_days``, where "earlier"
   runs from the first purchase to the start of the recent period, counted in growth_days units
   with a minimum of one period. A customer with recent spend and no earlier spend (only started
   buying recently) qualifies: that is growth, and such a customer who also signed up recently
   has already been caught by New. Recent spend must be positive;
4. High value / 5. Ordinary / 6. Below Average: the value tier of the customer's cluster
   (high / mid / low). "Potential profitable" = High value + Most Growth.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from engine.columns import TRANSITION_COLUMNS
from engine.rfm import (
    CustomerLines,
    by_code,
    coded_customer_lines,
    codes_index,
    require_columns,
)
from engine.settings import ClassSettings

NEW, NEGATIVE, MOST_GROWTH = "New", "Negative", "Most Growth"
HIGH_VALUE, ORDINARY, BELOW_AVERAGE = "High value", "Ordinary", "Below Average"
CLASSES = (NEW, NEGATIVE, MOST_GROWTH, HIGH_VALUE, ORDINARY, BELOW_AVERAGE)
POTENTIAL_PROFITABLE = (HIGH_VALUE, MOST_GROWTH)


def growth_frame(history: pd.DataFrame, *, as_of: date, growth_days: int,
                 non_product_codes: Sequence[str] = (),
                 coded: CustomerLines | None = None) -> pd.DataFrame:
    """Per customer: first_seen, recent_spend, earlier_spend, earlier_periods (>= 1).
    ``coded`` (optional) is ``coded_customer_lines(history, non_product_codes)``, already made."""
    if coded is None:
        coded = coded_customer_lines(history, non_product_codes)
    recent_start, end = growth_bounds(as_of, growth_days)
    inside = coded.ts < end.to_datetime64()
    recent = inside & (coded.ts >= recent_start.to_datetime64())
    earlier = inside & ~recent
    bought = inside & ~coded.is_return
    n = len(coded.ids)
    frame = pd.DataFrame({
        "first_seen": codes_index(by_code(coded.ts[bought], coded.customer[bought], n).min()),
        "recent_spend": codes_index(by_code(coded.net[recent], coded.customer[recent], n).sum()),
        "earlier_spend": codes_index(by_code(coded.net[earlier], coded.customer[earlier],
                                             n).sum()),
    })
    frame.index = pd.Index(coded.ids[frame.index.to_numpy(dtype=np.int64)], name="customer_id")
    return growth_periods(frame, as_of=as_of, growth_days=growth_days)


def growth_bounds(as_of: date, growth_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(start of the recent period, end of the history): lines at or after the first are
    recent, lines at or after the second are after as_of's day and left out."""
    as_of_ts = pd.Timestamp(as_of)
    return as_of_ts - pd.Timedelta(days=growth_days), as_of_ts + pd.Timedelta(days=1)


def growth_periods(frame: pd.DataFrame, *, as_of: date, growth_days: int) -> pd.DataFrame:
    """growth_frame's table from per-customer first purchase moment (first_seen) and the recent
    and earlier net spend (missing = none), indexed by customer_id; both backends end here."""
    frame = frame.assign(first_seen=frame["first_seen"].dt.normalize()) \
        .fillna({"recent_spend": 0.0, "earlier_spend": 0.0})
    recent_start, _ = growth_bounds(as_of, growth_days)
    earlier_days = (recent_start - frame["first_seen"]).dt.days.clip(lower=0)
    frame["earlier_periods"] = (earlier_days / growth_days).clip(lower=1.0).fillna(1.0)
    return frame


def classify(segments: pd.DataFrame, history: pd.DataFrame | None,
             customers: pd.DataFrame | None, *,
             as_of: date, settings: ClassSettings, tier_names: Sequence[str],
             non_product_codes: Sequence[str] = (),
             coded: CustomerLines | None = None,
             growth: pd.DataFrame | None = None) -> pd.Series:
    """The class of every customer of ``segments`` (customer_id, monetary, value_tier).

    ``history`` holds the customers' lines up to as_of (it may start before the window, so
    first purchases and earlier spend are known); ``customers`` may carry signup_date.
    ``growth`` (optional) is the history's `growth_frame`, already made (the Spark backend
    makes it; ``history`` is then not read).
    """
    require_columns(segments, ["customer_id", "monetary", "value_tier"], "segments frame")
    ids = segments["customer_id"].astype(str)
    as_of_ts = pd.Timestamp(as_of)
    if growth is None:
        if history is None:
            raise ValueError("classify needs the history lines or their growth frame")
        growth = growth_frame(history, as_of=as_of, growth_days=settings.growth_days,
                              non_product_codes=non_product_codes, coded=coded)
    growth = growth.reindex(ids)
    signup = pd.Series(pd.NaT, index=ids, dtype="datetime64[ns]")
    if (customers is not None and customers.index.name == "customer_id"
            and "signup_date" in customers.columns
            and customers["signup_date"].dtype == "datetime64[ns]"):
        # Indexed by id already (the dashboard keeps them so): its index's lookup table is
        # built once, not once per window (185,000 ids).
        signup = customers["signup_date"].reindex(ids)
    elif customers is not None and "signup_date" in customers.columns and len(customers):
        known = customers.dropna(subset=["signup_date"])
        known_dates = pd.to_datetime(known["signup_date"]).to_numpy()
        signup = pd.Series(known_dates, index=known["customer_id"].astype(str)).reindex(ids)
    signup = signup.fillna(growth["first_seen"])
    signup_age = (as_of_ts - signup).dt.days

    recent = growth["recent_spend"].fillna(0.0)
    earlier_average = growth["earlier_spend"].fillna(0.0) / growth["earlier_periods"].fillna(1.0)
    high, mid, _low = tier_names
    tier = segments["value_tier"].to_numpy()
    conditions = [
        ((signup_age >= 0) & (signup_age <= settings.new_days)).to_numpy(),
        (segments["monetary"] <= 0).to_numpy(),
        ((recent > 0) & (recent >= settings.growth_factor * earlier_average.clip(lower=0)))
        .to_numpy(),
        tier == high,
        tier == mid,
    ]
    chosen = np.select(conditions, [NEW, NEGATIVE, MOST_GROWTH, HIGH_VALUE, ORDINARY],
                       default=BELOW_AVERAGE)
    return pd.Series(chosen, index=segments.index, dtype=object, name="customer_class")


# The one label of a customer missing from one of two runs, in the export and on the dashboard.
ABSENT = "(none)"


def class_transitions(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Customers moving between classes from one run to another (customer_id, customer_class
    frames). A customer in only one of the runs counts with ABSENT on the other side."""
    merged = before.merge(after, on="customer_id", how="outer", suffixes=("_from", "_to"))
    counts = (merged.fillna({"customer_class_from": ABSENT, "customer_class_to": ABSENT})
              .groupby(["customer_class_from", "customer_class_to"]).size()
              .rename("customers").reset_index()
              .rename(columns={"customer_class_from": "from_class",
                               "customer_class_to": "to_class"}))
    order = {name: position for position, name in enumerate((*CLASSES, ABSENT))}
    counts = counts.sort_values(["from_class", "to_class"],
                                key=lambda column: column.map(lambda name: order.get(name, 99)),
                                kind="mergesort")
    counts["customers"] = counts["customers"].astype("int64")
    return counts[TRANSITION_COLUMNS].reset_index(drop=True)
