"""engine.sales_figures on Spark: the window's KPIs, monthly and product figures aggregated where
the lines are; only one row per month and per product reaches the driver.

A month is the UTC calendar month of a line's moment (the session's time zone is UTC:
engine.spark.session), written YYYY-MM as on pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine.sales_figures import GROUPINGS, MONTH_COLUMNS, SalesFigures, sort_groups
from engine.spark.features import to_driver

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def sales_figures(window: DataFrame, history: DataFrame, *, non_product_codes: Sequence[str],
                  has_products: bool) -> SalesFigures:
    from pyspark.sql import functions as F

    buy = ~F.col("is_return")
    bought_invoice = F.when(buy, F.col("invoice"))
    buyer = F.when(buy, F.col("customer_id"))
    # One pass for the months and the totals: a rollup's grand-total row (grouping id 1).
    made = to_driver(
        window.rollup(F.date_format("ts", "yyyy-MM").alias("month"))
        .agg(F.sum("amount").alias("revenue"), F.countDistinct(bought_invoice).alias("orders"),
             F.countDistinct(buyer).alias("active_customers"), F.count(F.lit(1)).alias("lines"),
             F.grouping_id().alias("total")))
    total = made[made["total"] == 1].iloc[0]
    totals = {"revenue": float(total["revenue"]), "orders": int(total["orders"]),
              "customers": int(total["active_customers"]), "lines": int(total["lines"])}
    firsts = to_driver(
        history.where(buy & F.col("customer_id").isNotNull())
        .groupBy("customer_id").agg(F.min("ts").alias("first"))
        .groupBy(F.date_format("first", "yyyy-MM").alias("month"))
        .agg(F.count(F.lit(1)).alias("new_customers")))
    months = made[made["total"] == 0].merge(firsts, on="month", how="left")
    months = months.sort_values("month", kind="mergesort", ignore_index=True)
    months["revenue"] = months["revenue"].astype(float)
    for name in ("orders", "active_customers", "new_customers"):
        months[name] = months[name].fillna(0).astype(np.int64)
    products = None
    if has_products:
        kept = F.col("stock_code").isNotNull() & ~F.col("stock_code").isin(
            list(non_product_codes))
        products = to_driver(window.where(kept).groupBy("stock_code").agg(
            F.sum("amount").alias("revenue"),
            F.sum(F.col("quantity").cast("double")).alias("quantity"),
            F.countDistinct(buyer).alias("customers")))
        products = products.sort_values("stock_code", kind="mergesort", ignore_index=True)
        products = pd.DataFrame({
            "stock_code": products["stock_code"].astype(object),
            "revenue": products["revenue"].astype(float),
            "quantity": products["quantity"].astype(float),
            "customers": products["customers"].astype(np.int64),
        })
    return SalesFigures(totals=totals, months=months[MONTH_COLUMNS], products=products,
                        non_product_codes=tuple(sorted(non_product_codes)))


def group_products(spark: SparkSession, window: DataFrame, assignments: pd.DataFrame, *,
                   non_product_codes: Sequence[str]) -> pd.DataFrame:
    """engine.sales_figures.group_products: the (customer, product) sums made where the lines
    are, joined with the assignments (one row per customer), summed per group."""
    from pyspark.sql import functions as F

    kept = (F.col("stock_code").isNotNull() & F.col("customer_id").isNotNull()
            & ~F.col("stock_code").isin(list(non_product_codes)))
    people = spark.createDataFrame(pd.DataFrame({
        "customer_id": assignments["customer_id"].astype(str),
        **{grouping: assignments[grouping].astype(str) for grouping in GROUPINGS}}))
    pairs = (window.where(kept).groupBy("customer_id", "stock_code")
             .agg(F.sum("amount").alias("revenue"),
                  F.max((~F.col("is_return")).cast("int")).alias("bought"))
             .join(people, on="customer_id")
             .persist())
    frames = []
    for grouping in GROUPINGS:
        frame = to_driver(pairs.groupBy(F.col(grouping).alias("group"), "stock_code")
                          .agg(F.sum("revenue").alias("revenue"),
                               F.sum("bought").alias("customers")))
        frames.append(pd.DataFrame({
            "grouping": grouping, "group": frame["group"].astype(object),
            "stock_code": frame["stock_code"].astype(object),
            "revenue": frame["revenue"].astype(float),
            "customers": frame["customers"].astype(np.int64)}))
    pairs.unpersist()
    return sort_groups(pd.concat(frames, ignore_index=True))
