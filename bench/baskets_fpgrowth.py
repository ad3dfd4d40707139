"""Basket stage on the real data, two ways: Segmint's FP-tree built from the distinct baskets
(engine.baskets.frequent_itemsets) and mlxtend's public `fpgrowth` on the same sparse matrix.

    python -m bench.baskets_fpgrowth [../shared/data/online_retail.csv.gz] [repeats]

Lines come from tests.engine.realdata.read_online_retail (the ingest rules, no database); the
customers are put in 4 clusters by a seeded draw (the stage mines all customers plus each
cluster, as a run does) with the [baskets] defaults of config.toml. Prints, per way, the best
wall time of `mine_rules` over the repeats and checks both ways give the same rules.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from mlxtend.frequent_patterns import fpgrowth

from engine import baskets
from engine.settings import BasketSettings
from tests.engine.realdata import read_online_retail

NON_PRODUCT = ["POST", "DOT", "M", "D", "C2", "BANK CHARGES", "AMAZONFEE", "B", "CRUK", "S",
               "PADS"]


def public_itemsets(matrix, columns, settings: BasketSettings) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """mlxtend's public API on the same matrix: a sparse boolean DataFrame into fpgrowth."""
    warnings.filterwarnings("ignore", "Allowing arbitrary scalar fill_value", FutureWarning)
    frame = pd.DataFrame.sparse.from_spmatrix(matrix.astype(bool), columns=list(columns))
    return fpgrowth(frame, min_support=settings.min_support, use_colnames=True,
                    max_len=settings.max_len)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/online_retail.csv.gz")
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    lines = read_online_retail(path)
    customers = lines["customer_id"].dropna().unique()
    clusters = pd.DataFrame({"customer_id": customers,
                             "cluster": np.random.default_rng(7).integers(0, 4, len(customers))})
    settings = BasketSettings()
    coded = baskets.CodedLines.of(lines, NON_PRODUCT)
    own = baskets.frequent_itemsets
    results = {}
    for name, itemsets in (("segmint tree", own), ("mlxtend fpgrowth", public_itemsets)):
        baskets.frequent_itemsets = itemsets  # type: ignore[assignment]
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            rules = baskets.mine_rules(lines, clusters, settings=settings,
                                       non_product_codes=NON_PRODUCT, coded=coded)
            best = min(best, time.perf_counter() - start)
        results[name] = rules
        print(f"{name:18s} mine_rules best of {repeats}: {best:.2f} s, {len(rules)} rules")
    baskets.frequent_itemsets = own
    a, b = results.values()
    key = ["cluster", "antecedents", "consequents"]
    same = a.sort_values(key).reset_index(drop=True).equals(b.sort_values(key)
                                                            .reset_index(drop=True))
    print(f"same rules: {same}")


if __name__ == "__main__":
    main()
