"""engine.recommend.recommend on the Spark backend: what the scores read of the history's lines
(engine.recommend.RecommendInputs) is aggregated in Spark with Spark's own functions, and the
driver ranks with the pandas backend's code (engine.recommend.rank_recommendations).

What reaches the driver, never a line:

- the products: each stock code of a purchase line with its descriptions and how many purchase
  lines carry each (product-level; the driver picks the most frequent as the pandas code does);
- the co-occurrence neighbours: each product's `max_neighbours` most similar products. The
  baskets (each purchase invoice's distinct products, those above `max_basket_size` left out),
  the pair counts, the cosine and the cut are made in Spark, the cosine with the same floating
  operations in the same order as engine.recommend.cooccurrence, so the figures are equal to
  the bit; at most products x max_neighbours rows;
- the customer x product pairs of the run's customers: one row per distinct pair with a line
  (a purchase or a return), its distinct purchase invoices and whether it was bought in the
  neighbour window and in the two trending windows. This input is customer x product by nature
  (the purchase matrices and the BM25 counts of "customers like you"), so it reaches the driver
  as sparse pairs (4-byte numbers and booleans, sorted on the driver). There are never more
  pairs than the customers' lines; how many fewer depends on repeat buying: on the Online
  Retail data 266,875 pairs for 401,604 lines of customers (536,641 lines in all), on the
  synthetic 1 M-line bench sample 911,966 pairs for 1,007,171 lines (its customers seldom buy
  a product twice). It grows with the customers and their distinct products, not with how
  often they buy them.

Products and customers are numbered on the driver (sorted, as engine.baskets.CodedLines and
engine.recommend.people_of number them) and those numbers sent to Spark (broadcast), so both
backends build the same matrices in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from scipy import sparse

from engine.recommend import (
    RULE_INPUT_COLUMNS,
    RecommendInputs,
    empty_recommendations,
    most_frequent_descriptions,
    people_of,
    rank_recommendations,
    uses_time_counts,
)
from engine.recommend_ease import latest_weights
from engine.recommend_signals import TRENDING_BASE_WEEKS, TimeCounts, indicator, rising
from engine.rfm import require_columns
from engine.settings import RecommendSettings
from engine.spark.features import moment, to_driver


def purchase(non_product_codes: Sequence[str]) -> Column:
    """engine.baskets.purchase_mask: no return, a stock code, not a non-product code."""
    return (~F.col("is_return") & F.col("stock_code").isNotNull()
            & ~F.col("stock_code").isin(list(non_product_codes)))


def numbered(spark: SparkSession, name: str, values: np.ndarray, number: str) -> DataFrame:
    """(name, number) for each value: its position in `values`, to broadcast."""
    return spark.createDataFrame(
        pd.DataFrame({name: values.astype(str), number: np.arange(len(values), dtype=np.int64)}),
        schema=f"{name} string, {number} long")


def described_products(history: DataFrame, bought: Column) -> tuple[np.ndarray, np.ndarray]:
    """(products: the purchase lines' stock codes, sorted; each one's description)."""
    found = to_driver(history.where(bought).groupBy("stock_code", "description")
                      .agg(F.count(F.lit(1)).alias("lines")))
    products, product = np.unique(found["stock_code"].to_numpy(dtype=object).astype(str),
                                  return_inverse=True)
    products = products.astype(object)
    named = found["description"].notna().to_numpy()
    descriptions = most_frequent_descriptions(
        products, product[named].astype(np.int64),
        found["description"].to_numpy(dtype=object)[named],
        found["lines"].to_numpy(dtype=np.int64)[named])
    return products, descriptions


def cooccurrence(history: DataFrame, bought: Column, product_ids: DataFrame, n_products: int,
                 settings: RecommendSettings) -> sparse.csr_matrix:
    """engine.recommend.cooccurrence: products x products cosine over purchase baskets, each
    product's max_neighbours closest (ties to the lower product number)."""
    baskets = history.where(bought).join(F.broadcast(product_ids), "stock_code") \
        .select("invoice", "product").distinct()
    baskets = baskets.withColumn("size", F.count(F.lit(1)).over(Window.partitionBy("invoice"))) \
        .where(F.col("size") <= settings.max_basket_size).select("invoice", "product") \
        .persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # 1 / sqrt(baskets holding the product), as the pandas code: the same IEEE operations.
        scale = baskets.groupBy("product").agg(
            (F.lit(1.0) / F.sqrt(F.greatest(F.count(F.lit(1)).cast("double"), F.lit(1.0))))
            .alias("scale"))
        pairs = baskets.select("invoice", F.col("product").alias("i")) \
            .join(baskets.select("invoice", F.col("product").alias("j")), "invoice") \
            .where(F.col("i") != F.col("j")) \
            .groupBy("i", "j").agg(F.count(F.lit(1)).cast("double").alias("together"))
        scaled = pairs \
            .join(F.broadcast(scale.select(F.col("product").alias("i"),
                                           F.col("scale").alias("scale_i"))), "i") \
            .join(F.broadcast(scale.select(F.col("product").alias("j"),
                                           F.col("scale").alias("scale_j"))), "j") \
            .select("i", "j", (F.col("together") * F.col("scale_i") * F.col("scale_j"))
                    .alias("value"))
        closest = Window.partitionBy("i").orderBy(F.desc("value"), F.asc("j"))
        top = to_driver(scaled.withColumn("place", F.row_number().over(closest))
                        .where(F.col("place") <= settings.max_neighbours)
                        .select("i", "j", "value"))
    finally:
        baskets.unpersist()
    row, col = top["i"].to_numpy(dtype=np.int64), top["j"].to_numpy(dtype=np.int64)
    value = top["value"].to_numpy(dtype=float)
    order = np.lexsort((col, -value, row))  # the pandas code's order: by row, best first
    return sparse.csr_matrix((value[order], (row[order], col[order])),
                             shape=(n_products, n_products))


def customer_pairs(history: DataFrame, bought: Column, product_ids: DataFrame,
                   customer_ids: DataFrame, settings: RecommendSettings,
                   as_of: date) -> pd.DataFrame:
    """Per distinct (row, product) of the customers' lines: invoices (distinct purchase
    invoices), recent (bought in the last neighbour_days before as_of), now and before (bought
    in the trending window and in the TRENDING_BASE_WEEKS before it), latest (the moment of the
    latest purchase, null: none; EASE's weights), sorted by row, product."""
    start = as_of - timedelta(days=settings.trending_days)
    base = start - timedelta(weeks=TRENDING_BASE_WEEKS)
    ts = F.col("ts")

    def flag(condition: Column) -> Column:
        return F.max(F.when(bought & condition, 1).otherwise(0))

    per_invoice = history.where(F.col("customer_id").isNotNull()) \
        .join(F.broadcast(product_ids), "stock_code") \
        .join(F.broadcast(customer_ids), "customer_id") \
        .groupBy("row", "product", "invoice").agg(
            flag(F.lit(True)).alias("bought"),
            flag(ts >= moment(as_of - timedelta(days=settings.neighbour_days))).alias("recent"),
            flag((ts >= moment(start)) & (ts < moment(as_of))).alias("now"),
            flag((ts >= moment(base)) & (ts < moment(start))).alias("before"),
            F.max(F.when(bought, ts)).alias("latest"))
    # Compact columns (4-byte numbers, booleans): this table is as long as the pairs.
    pairs = to_driver(per_invoice.groupBy("row", "product").agg(
        F.sum("bought").alias("invoices"),
        *(F.max(name).alias(name) for name in ("recent", "now", "before", "latest"))).select(
        *(F.col(name).cast("int").alias(name) for name in ("row", "product", "invoices")),
        *(F.col(name).cast("boolean").alias(name) for name in ("recent", "now", "before")),
        "latest"))
    order = np.lexsort((pairs["product"].to_numpy(), pairs["row"].to_numpy()))
    return pairs.iloc[order].reset_index(drop=True)


def time_counts(pairs: pd.DataFrame, shape: tuple[int, int]) -> TimeCounts:
    """engine.recommend_signals.TimeCounts from customer_pairs."""
    row, col = pairs["row"].to_numpy(dtype=np.int64), pairs["product"].to_numpy(dtype=np.int64)
    invoices = pairs["invoices"].to_numpy(dtype=np.int64)
    bought = invoices > 0
    counts = sparse.csr_matrix((invoices[bought].astype(np.float64),
                                (row[bought], col[bought])), shape=shape)
    recent = pairs["recent"].to_numpy(dtype=bool)
    now, before = (np.bincount(col[pairs[name].to_numpy(dtype=bool)],
                               minlength=shape[1]).astype(float) for name in ("now", "before"))
    return TimeCounts(counts, indicator(row[recent], col[recent], shape), rising(now, before))


def recommend_inputs(spark: SparkSession, history: DataFrame, customers: np.ndarray, *,
                     settings: RecommendSettings, non_product_codes: Sequence[str],
                     as_of: date) -> RecommendInputs | None:
    """engine.recommend.recommend_inputs of the history in Spark (None: no purchase line)."""
    bought = purchase(non_product_codes)
    products, descriptions = described_products(history, bought)
    if len(products) == 0:
        return None
    product_ids = numbered(spark, "stock_code", products, "product")
    customer_ids = numbered(spark, "customer_id", customers, "row")
    shape = (len(customers), len(products))
    pairs = customer_pairs(history, bought, product_ids, customer_ids, settings, as_of)
    row, col = pairs["row"].to_numpy(dtype=np.int64), pairs["product"].to_numpy(dtype=np.int64)
    purchased = pairs["invoices"].to_numpy(dtype=np.int64) > 0
    timed = time_counts(pairs, shape) if uses_time_counts(settings) else None
    neighbours = (cooccurrence(history, bought, product_ids, len(products), settings)
                  if settings.cooccurrence_weight > 0
                  else sparse.csr_matrix((len(products), len(products))))
    return RecommendInputs(
        customers, products, descriptions, ever=indicator(row, col, shape),
        bought=indicator(row[purchased], col[purchased], shape), neighbours=neighbours,
        time_counts=timed, ease_training=ease_training(pairs, shape, settings, as_of))


def ease_training(pairs: pd.DataFrame, shape: tuple[int, int], settings: RecommendSettings,
                  as_of: date) -> sparse.csr_matrix | None:
    """engine.recommend.ease_training from customer_pairs' latest purchase of each pair (the
    weight of a pair's latest purchase is the largest of its purchases')."""
    if settings.ease_weight <= 0 or settings.ease_half_life_days <= 0:
        return None
    latest = pd.to_datetime(pairs["latest"]).to_numpy(dtype="datetime64[ns]")
    return latest_weights(latest, ~np.isnat(latest), pairs["row"].to_numpy(dtype=np.int64),
                          pairs["product"].to_numpy(dtype=np.int64),
                          np.datetime64(as_of, "ns"), settings.ease_half_life_days, shape)


def recommendations(spark: SparkSession, history: DataFrame, assignments: pd.DataFrame,
                    rules: pd.DataFrame, *, settings: RecommendSettings,
                    non_product_codes: Sequence[str], as_of: date) -> pd.DataFrame:
    """engine.recommend.recommend of the history's lines, on the Spark backend."""
    require_columns(assignments, ("customer_id", "cluster"), "assignments")
    require_columns(rules, RULE_INPUT_COLUMNS, "rules")
    if assignments.empty:
        return empty_recommendations()
    people = people_of(assignments)
    inputs = recommend_inputs(spark, history, people["customer_id"].to_numpy(dtype=object),
                              settings=settings, non_product_codes=non_product_codes,
                              as_of=as_of)
    if inputs is None:
        return empty_recommendations()
    return rank_recommendations(inputs, people, rules, settings=settings)
