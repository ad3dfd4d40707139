"""Per-customer figures of the lines in Spark: what engine.rfm, engine.classes and engine.clv
compute from the lines, as Spark aggregations; the results go to the driver (Arrow) and through
the same pandas code that ends those computations on the pandas backend (rfm_frame,
growth_periods, customer_value).

Calendar days: a line's day is its UTC date. Spark never turns moments into day counts here:
the aggregates keep moments (first and last purchase), and engine.rfm.rfm_frame and
engine.classes.growth_periods make days of them for both backends. The one day Spark makes is
a purchase day's date for the CLV models (`to_date` in the session's UTC time zone, what
`datetime64[D]` does on pandas); window bounds are UTC midnights (`moment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from engine.classes import growth_bounds, growth_periods
from engine.rfm import check_as_of, rfm_frame

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def moment(value: pd.Timestamp | date) -> Column:
    """A UTC moment as a Spark timestamp literal (parsed in the session's UTC time zone; a
    Python datetime literal would be read in the Python process's local time zone)."""
    from pyspark.sql import functions as F

    return F.lit(pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp")


def customer_lines(lines: DataFrame, non_product_codes: Sequence[str]) -> DataFrame:
    """engine.rfm.customer_lines: lines with a customer id and no non-product code (a line
    without a stock code stays), with the net value (a return always subtracts)."""
    from pyspark.sql import functions as F

    product = F.col("stock_code").isNull() | ~F.col("stock_code").isin(list(non_product_codes))
    return lines.where(F.col("customer_id").isNotNull() & product).select(
        "customer_id", "invoice", "ts", "is_return",
        F.when(F.col("is_return"), -F.abs(F.col("amount"))).otherwise(F.col("amount"))
        .alias("net"))


def to_driver(frame: DataFrame) -> pd.DataFrame:
    """A per-customer (or per-product) table as pandas, through Arrow; timestamps come as naive
    UTC datetime64[ns]."""
    table = frame.toPandas()
    for name, kind in frame.dtypes:
        if kind == "timestamp":
            table[name] = pd.to_datetime(table[name]).astype("datetime64[ns]")
    return table


def rfm_table(window: DataFrame, *, as_of: date) -> pd.DataFrame:
    """engine.rfm.rfm_table of the window's customer lines (`customer_lines`)."""
    from pyspark.sql import functions as F

    buy = ~F.col("is_return")
    figures = to_driver(window.groupBy("customer_id").agg(
        F.min(F.when(buy, F.col("ts"))).alias("first"),
        F.max(F.when(buy, F.col("ts"))).alias("last"),
        F.countDistinct(F.when(buy, F.col("invoice"))).alias("frequency"),
        F.sum("net").alias("net"),
    ).where(F.col("last").isNotNull()))
    figures = figures.sort_values("customer_id", kind="mergesort", ignore_index=True)
    check_as_of(figures["last"].max() if len(figures) else None, as_of)
    return rfm_frame(figures["customer_id"].to_numpy(dtype=object), first=figures["first"],
                     last=figures["last"], frequency=figures["frequency"].to_numpy(),
                     net=figures["net"].astype(float), as_of=as_of)


def growth_frame(history: DataFrame, *, as_of: date, growth_days: int) -> pd.DataFrame:
    """engine.classes.growth_frame of the history's customer lines."""
    from pyspark.sql import functions as F

    recent_start, end = growth_bounds(as_of, growth_days)
    recent = F.col("ts") >= moment(recent_start)
    figures = to_driver(history.where(F.col("ts") < moment(end)).groupBy("customer_id").agg(
        F.min(F.when(~F.col("is_return"), F.col("ts"))).alias("first_seen"),
        F.sum(F.when(recent, F.col("net"))).alias("recent_spend"),
        F.sum(F.when(~recent, F.col("net"))).alias("earlier_spend"),
    ))
    frame = figures.set_index("customer_id").sort_index(kind="mergesort")
    return growth_periods(frame.astype({"recent_spend": float, "earlier_spend": float}),
                          as_of=as_of, growth_days=growth_days)


def purchase_days(history: DataFrame) -> pd.DataFrame:
    """engine.clv.purchase_days of the history's customer lines: customer_id, day, value."""
    from pyspark.sql import functions as F

    days = to_driver(history.where(~F.col("is_return") & (F.col("net") >= 0))
                     .groupBy("customer_id", F.to_date("ts").alias("day"))
                     .agg(F.sum("net").alias("value")))
    days = days.sort_values(["customer_id", "day"], kind="mergesort", ignore_index=True)
    return pd.DataFrame({"customer_id": days["customer_id"].astype(object),
                         "day": pd.to_datetime(days["day"]).astype("datetime64[ns]"),
                         "value": days["value"].to_numpy(dtype=float)})
