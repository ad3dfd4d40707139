"""The basket rules of engine.baskets.mine_rules with the baskets and their frequent item sets
made in Spark: one basket per purchase invoice (per cluster: the invoices of its customers),
each product once per basket (collect_set), baskets above max_basket_size products left out,
then Spark MLlib's FPGrowth per cluster. Only the frequent item sets (a few hundred rows per
cluster) reach the driver, where mlxtend's association_rules makes the rules from them as on the
pandas backend (engine.baskets.rules_from_itemsets): every rule with its antecedents and
consequents, the same support, confidence, lift and the other metrics.

FPGrowth counts an item set as frequent when it is in at least ceil(min_support x baskets)
baskets (Spark's rule, and mlxtend's). It has no longest item set: the sets longer than
max_len are dropped before the rules are made.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.baskets import ordered_rules, rules_from_itemsets
from engine.settings import BasketSettings

log = logging.getLogger(__name__)


def purchases(window: DataFrame, non_product_codes: Sequence[str]) -> DataFrame:
    """engine.baskets.purchase_lines: no returns, a stock code, not a non-product code."""
    return window.where(~F.col("is_return") & F.col("stock_code").isNotNull()
                        & ~F.col("stock_code").isin(list(non_product_codes))) \
        .select("invoice", "stock_code", "customer_id")


def cluster_baskets(bought: DataFrame, clusters: DataFrame, max_basket_size: int) -> DataFrame:
    """(cluster, items) per basket: cluster null for the all-customer baskets, which hold every
    purchase invoice, with or without a customer id."""
    everyone = bought.groupBy("invoice").agg(F.collect_set("stock_code").alias("items")) \
        .select(F.lit(None).cast("long").alias("cluster"), "items")
    per_cluster = bought.join(F.broadcast(clusters), "customer_id") \
        .groupBy("cluster", "invoice").agg(F.collect_set("stock_code").alias("items")) \
        .select("cluster", "items")
    return everyone.unionByName(per_cluster).where(F.size("items") <= max_basket_size)


def itemsets_of(baskets: DataFrame, n_baskets: int, settings: BasketSettings,
                partitions: int) -> pd.DataFrame:
    """Frequent item sets of one group's baskets: support, itemsets (frozensets), as
    engine.baskets.frequent_itemsets gives them. ``partitions``: FPGrowth's conditional trees
    (its default, the input's partitions, made the 1 M-line bench's fits slower)."""
    from pyspark.ml.fpm import FPGrowth

    model = FPGrowth(itemsCol="items", minSupport=settings.min_support,
                     minConfidence=settings.min_confidence,
                     numPartitions=partitions).fit(baskets)
    found = model.freqItemsets.where(F.size("items") <= settings.max_len).toPandas()
    support = found["freq"].to_numpy(dtype=float) / float(n_baskets)
    kept = support >= settings.min_support
    return pd.DataFrame({"support": support[kept],
                         "itemsets": [frozenset(str(item) for item in items)
                                      for items in found["items"][kept]]})


def mine_rules(spark: SparkSession, window: DataFrame, assignments: pd.DataFrame, *,
               settings: BasketSettings, non_product_codes: Sequence[str],
               partitions: int) -> pd.DataFrame:
    """engine.baskets.mine_rules on the Spark backend: the all-customer rules (cluster None),
    then each cluster's."""
    people = assignments.drop_duplicates("customer_id")
    clusters = spark.createDataFrame(pd.DataFrame({
        "customer_id": people["customer_id"].astype(str).to_numpy(dtype=object),
        "cluster": pd.to_numeric(people["cluster"]).astype("int64").to_numpy(),
    }))
    baskets = cluster_baskets(purchases(window, non_product_codes), clusters,
                              settings.max_basket_size).cache()
    try:
        counts = {None if row["cluster"] is None else int(row["cluster"]): int(row["count"])
                  for row in baskets.groupBy("cluster").count().collect()}
        frames = []
        for cluster in [None, *sorted(int(n) for n in assignments["cluster"].dropna().unique())]:
            n_baskets = counts.get(cluster, 0)
            if n_baskets < settings.min_baskets:
                log.info("cluster %s: %d baskets, fewer than min_baskets; no rules", cluster,
                         n_baskets)
                continue
            group = baskets.where(F.col("cluster").isNull() if cluster is None
                                  else F.col("cluster") == cluster)
            rules = rules_from_itemsets(itemsets_of(group, n_baskets, settings, partitions),
                                        n_baskets, settings)
            log.info("cluster %s: %d baskets, %d rules", cluster, n_baskets, len(rules))
            if not rules.empty:
                rules.insert(0, "cluster", pd.Series([cluster] * len(rules), dtype=object))
                frames.append(rules)
    finally:
        baskets.unpersist()
    return ordered_rules(frames)
