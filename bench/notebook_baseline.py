"""The notebook way: what the source documents (and most RFM tutorials) do, stage by stage.

pandas read_csv, dropna, drop_duplicates; RFM with groupby and lambdas and pd.qcut scores;
KMeans for k = 2..10 with n_init=10 and a full silhouette for each k, final k = 4; per-cluster
apriori on a dense invoice x description table (groupby/unstack, min_support 0.02) and
association_rules; per-customer recommendations from a dense customer x product pivot in a
Python loop; results written with DataFrame.to_sql to SQLite.

Where a notebook has a slower habit than needed (`applymap(encode_units)` to binarise the basket,
recomputing the cluster's popularity inside the per-customer loop) the baseline takes the faster,
vectorised form, so the comparison flatters the notebook rather than Segmint.

Each stage is a function of a StageContext: it loads the previous stage's hand-over file, times
only its own work and saves its output for the next stage (see bench/measure.py). `main` also runs
all stages in one process for a quick look: `python -m bench.notebook_baseline --data PATH`.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measure import StageContext, max_rss_mib

MIN_SUPPORT = 0.02
MIN_CONFIDENCE = 0.3
FINAL_K = 4
K_RANGE = range(2, 11)
TOP_N = 10
SEED = 0


def read(ctx: StageContext) -> None:
    with ctx.timed():
        df = pd.read_csv(ctx.data, dtype={"InvoiceNo": str, "StockCode": str})
    ctx.notes["lines"] = len(df)
    ctx.save("raw", df)


def clean(ctx: StageContext) -> None:
    df = ctx.load("raw")
    with ctx.timed():
        df = df.dropna()
        df = df.drop_duplicates()
        df = df[df["Quantity"] > 0]  # cancellations out, as the tutorials do
        df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"])
        df["CustomerID"] = df["CustomerID"].astype(int)
        df["TotalPrice"] = df["Quantity"] * df["UnitPrice"]
    ctx.notes["lines"] = len(df)
    ctx.save("clean", df)


def _rfm_segment(score: int) -> str:
    if score >= 545:
        return "VIP"
    if score >= 511:
        return "Loyal"
    if score >= 443:
        return "Potential Loyalists"
    if score >= 411:
        return "New"
    if score >= 333:
        return "Promising"
    if score >= 311:
        return "Need Attention"
    if score >= 231:
        return "About To Sleep"
    if score >= 188:
        return "Cannot Lose Them"
    if score >= 121:
        return "At-Risk"
    return "Hibernating"


def rfm(ctx: StageContext) -> None:
    df = ctx.load("clean")
    with ctx.timed():
        snapshot = df["InvoiceDate"].max() + pd.Timedelta(days=1)
        table = df.groupby("CustomerID").agg({
            "InvoiceDate": lambda x: (snapshot - x.max()).days,
            "InvoiceNo": lambda x: x.nunique(),
            "TotalPrice": lambda x: x.sum(),
        })
        table.columns = ["Recency", "Frequency", "Monetary"]
        table["R"] = pd.qcut(table["Recency"], 5, labels=[5, 4, 3, 2, 1]).astype(int)
        table["F"] = pd.qcut(table["Frequency"].rank(method="first"), 5,
                             labels=[1, 2, 3, 4, 5]).astype(int)
        table["M"] = pd.qcut(table["Monetary"], 5, labels=[1, 2, 3, 4, 5]).astype(int)
        table["RFM_Score"] = table["R"] * 100 + table["F"] * 10 + table["M"]
        table["Segment"] = table["RFM_Score"].apply(lambda s: _rfm_segment(int(s)))
    ctx.notes["customers"] = len(table)
    ctx.save("rfm", table)


def kmeans(ctx: StageContext) -> None:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    table = ctx.load("rfm")
    with ctx.timed():
        features = np.log1p(table[["Recency", "Frequency", "Monetary"]].clip(lower=0))
        scaled = StandardScaler().fit_transform(features)
        wcss, silhouettes = [], []
        for k in K_RANGE:
            model = KMeans(n_clusters=k, init="k-means++", max_iter=300, n_init=10,
                           random_state=SEED).fit(scaled)
            wcss.append(model.inertia_)
            silhouettes.append(silhouette_score(scaled, model.labels_))
        final = KMeans(n_clusters=FINAL_K, init="k-means++", max_iter=300, n_init=10,
                       random_state=SEED).fit(scaled)
        table["Cluster"] = final.labels_
    ctx.notes["best_silhouette_k"] = int(K_RANGE[int(np.argmax(silhouettes))])
    ctx.save("clusters", table)


def baskets(ctx: StageContext) -> None:
    from mlxtend.frequent_patterns import apriori, association_rules

    df = ctx.load("clean")
    table = ctx.load("clusters")
    with ctx.timed():
        df = df.merge(table[["Cluster"]], left_on="CustomerID", right_index=True)
        all_rules = []
        for cluster in sorted(df["Cluster"].unique()):
            part = df[df["Cluster"] == cluster]
            basket = (part.groupby(["InvoiceNo", "Description"])["Quantity"].sum()
                      .unstack().reset_index().fillna(0).set_index("InvoiceNo"))
            basket_sets = basket > 0
            frequent = apriori(basket_sets, min_support=MIN_SUPPORT, use_colnames=True)
            if frequent.empty:
                continue
            rules = association_rules(frequent, num_itemsets=len(basket_sets),
                                      metric="confidence", min_threshold=MIN_CONFIDENCE)
            rules["Cluster"] = cluster
            all_rules.append(rules)
        rules = pd.concat(all_rules, ignore_index=True) if all_rules else pd.DataFrame()
    ctx.notes["rules"] = len(rules)
    ctx.save("rules", rules)


def recommend(ctx: StageContext) -> None:
    df = ctx.load("clean")
    table = ctx.load("clusters")
    with ctx.timed():
        pivot = df.pivot_table(index="CustomerID", columns="Description", values="Quantity",
                               aggfunc="sum", fill_value=0)
        clusters = table["Cluster"].reindex(pivot.index)
        popular = {c: pivot.loc[clusters[clusters == c].index].sum().sort_values(ascending=False)
                   for c in clusters.unique()}
        rows = []
        for customer_id in pivot.index:
            ranking = popular[clusters[customer_id]]
            bought = pivot.loc[customer_id]
            not_bought = ranking[bought[ranking.index].to_numpy() == 0]
            for rank, (item, score) in enumerate(not_bought.head(TOP_N).items(), start=1):
                rows.append((customer_id, rank, item, float(score)))
        recommendations = pd.DataFrame(rows, columns=["CustomerID", "Rank", "Description",
                                                      "Score"])
    ctx.notes["recommendations"] = len(recommendations)
    ctx.save("recommendations", recommendations)


def write(ctx: StageContext) -> None:
    table = ctx.load("clusters")
    rules = ctx.load("rules")
    recommendations = ctx.load("recommendations")
    target = ctx.workdir / "notebook.sqlite"
    target.unlink(missing_ok=True)
    with ctx.timed():
        for column in ("antecedents", "consequents"):
            if column in rules:
                rules[column] = rules[column].apply(lambda items: ", ".join(sorted(items)))
        with sqlite3.connect(target) as connection:
            table.to_sql("rfm_clusters", connection, if_exists="replace")
            rules.to_sql("association_rules", connection, if_exists="replace", index=False)
            recommendations.to_sql("recommendations", connection, if_exists="replace",
                                   index=False)


STAGES: dict[str, Callable[[StageContext], None]] = {
    "read": read, "clean": clean, "rfm": rfm, "kmeans": kmeans, "baskets": baskets,
    "recommend": recommend, "write": write,
}
# The run Segmint is compared with: everything after the data is loaded and cleaned.
RUN_STAGES = ("rfm", "kmeans", "baskets", "recommend", "write")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the notebook-style baseline in one process.")
    parser.add_argument("--data", type=Path, required=True, help="online-retail CSV or CSV.gz")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segmint-notebook-") as workdir:
        for name, stage in STAGES.items():
            ctx = StageContext(data=args.data, workdir=Path(workdir))
            started = time.perf_counter()
            stage(ctx)
            print(f"{name:10s} {ctx.seconds:8.2f} s  (with hand-over "
                  f"{time.perf_counter() - started:6.2f} s)  peak so far {max_rss_mib():7.0f} MiB"
                  f"  {ctx.notes}")


if __name__ == "__main__":
    main()
