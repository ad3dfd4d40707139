"""The basket rules of engine.baskets.mine_rules with the baskets and their frequent item sets
made in Spark: one basket per purchase invoice (per cluster: the invoices of its customers),
each product once per basket (collect_set), baskets above max_basket_size products left out,
then Spark MLlib's FPGrowth, once for every cluster together (group_itemsets). Only the
frequent item sets (a few hundred rows per cluster) reach the driver, where mlxtend's
association_rules makes the rules from them as on the pandas backend
(engine.baskets.rules_from_itemsets): every rule with its antecedents and consequents, the same
support, confidence, lift and the other metrics.

FPGrowth counts an item set as frequent when it is in at least ceil(min_support x baskets)
baskets (Spark's rule, and mlxtend's). It has no longest item set: the sets longer than
max_len are dropped before the rules are made.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.baskets import empty_rules, ordered_rules, rules_from_itemsets
from engine.settings import BasketSettings

log = logging.getLogger(__name__)

EVERYONE = "*"  # the tag of the all-customer baskets' items (clusters are tagged by number)
SEP = "|"  # tag, separator, stock code: split at the first one (tags hold no "|")


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


def group_itemsets(baskets: DataFrame, counts: dict[int | None, int],
                   settings: BasketSettings) -> dict[int | None, pd.DataFrame]:
    """Frequent item sets of every group (a cluster, or None for all customers) in one FPGrowth:
    each item is tagged with its basket's group, so no item set spans two groups, and the
    threshold is the lowest group's; each group then keeps the sets frequent by its own
    threshold (ceil(min_support x its baskets), FPGrowth's and mlxtend's rule) and its supports
    are shares of its own baskets, as engine.baskets.frequent_itemsets gives them."""
    from pyspark.ml.fpm import FPGrowth

    minimum = {group: math.ceil(settings.min_support * count) for group, count in counts.items()}
    total = sum(counts.values())
    tag = F.coalesce(F.col("cluster").cast("string"), F.lit(EVERYONE))
    tagged = baskets.select(F.transform("items", lambda item: F.concat(tag, F.lit(SEP), item))
                            .alias("items"))
    # FPGrowth's minimum count is ceil(minSupport x baskets): half a basket below the lowest
    # group's minimum makes it exactly that minimum, whatever the float's last bits.
    model = FPGrowth(itemsCol="items", minSupport=(min(minimum.values()) - 0.5) / total,
                     minConfidence=settings.min_confidence).fit(tagged)
    found = model.freqItemsets.where(F.size("items") <= settings.max_len).toPandas()
    found["group"] = [items[0].split(SEP, 1)[0] for items in found["items"]]
    result = {}
    for group, count in counts.items():
        mine = found[found["group"] == (EVERYONE if group is None else str(group))]
        freq = mine["freq"].to_numpy(dtype=np.int64)
        support = freq / float(count)
        kept = (freq >= minimum[group]) & (support >= settings.min_support)
        result[group] = pd.DataFrame({
            "support": support[kept],
            "itemsets": [frozenset(item.split(SEP, 1)[1] for item in items)
                         for items in mine["items"][kept]]})
    return result


def mine_rules(spark: SparkSession, window: DataFrame, assignments: pd.DataFrame, *,
               settings: BasketSettings, non_product_codes: Sequence[str]) -> pd.DataFrame:
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
        found = {None if row["cluster"] is None else int(row["cluster"]): int(row["count"])
                 for row in baskets.groupBy("cluster").count().collect()}
        counts: dict[int | None, int] = {}
        for cluster in [None, *sorted(int(n) for n in assignments["cluster"].dropna().unique())]:
            if found.get(cluster, 0) < settings.min_baskets:
                log.info("cluster %s: %d baskets, fewer than min_baskets; no rules", cluster,
                         found.get(cluster, 0))
            else:
                counts[cluster] = found[cluster]
        if not counts:
            return empty_rules()
        chosen = F.col("cluster").isin([group for group in counts if group is not None])
        if None in counts:
            chosen = chosen | F.col("cluster").isNull()
        itemsets = group_itemsets(baskets.where(chosen), counts, settings)
    finally:
        baskets.unpersist()
    frames = []
    for cluster, n_baskets in counts.items():
        rules = rules_from_itemsets(itemsets[cluster], n_baskets, settings)
        log.info("cluster %s: %d baskets, %d rules", cluster, n_baskets, len(rules))
        if not rules.empty:
            rules.insert(0, "cluster", pd.Series([cluster] * len(rules), dtype=object))
            frames.append(rules)
    return ordered_rules(frames)
