"""Market-basket rules per cluster (and for all customers) with mlxtend FP-growth.

A basket is one purchase invoice: returns and non-product codes are left out, and so are baskets
with more distinct products than `max_basket_size` (bulk orders that would relate everything to
everything). The one-hot basket table handed to mlxtend is a sparse DataFrame built from a SciPy
CSR matrix, never a dense invoice x product matrix.

`conviction` is infinite when a rule's confidence is 1; it is stored as NaN (None in the
database and in exports), so every column stays a plain finite-or-missing float.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from mlxtend.frequent_patterns import association_rules, fpgrowth
from scipy import sparse

from engine.errors import SegmintError
from engine.settings import BasketSettings

log = logging.getLogger(__name__)

RULE_COLUMNS = [
    "cluster", "antecedents", "consequents",
    "support", "confidence", "lift", "leverage", "conviction", "zhangs_metric",
]
METRICS = RULE_COLUMNS[3:]
LINE_COLUMNS = ("invoice", "stock_code", "customer_id", "is_return")

# mlxtend 0.23.2 added `num_itemsets` (the number of transactions) to association_rules.
_TAKES_NUM_ITEMSETS = "num_itemsets" in inspect.signature(association_rules).parameters
_TAKES_RETURN_METRICS = "return_metrics" in inspect.signature(association_rules).parameters


class BasketError(SegmintError):
    """The lines or assignments handed to basket mining are unusable."""


def empty_rules() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=float) for column in RULE_COLUMNS})
    return frame.astype({"cluster": object, "antecedents": object, "consequents": object})


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise BasketError(f"{what}: required column {missing[0]!r} missing")


def purchase_lines(lines: pd.DataFrame, non_product_codes: Sequence[str]) -> pd.DataFrame:
    """Purchase lines of real products: no returns, no postage/fee codes, a stock code present."""
    require_columns(lines, LINE_COLUMNS, "lines")
    keep = (
        ~lines["is_return"].astype(bool)
        & lines["stock_code"].notna()
        & ~lines["stock_code"].isin(list(non_product_codes))
    )
    return lines.loc[keep]


def basket_items(purchases: pd.DataFrame, max_basket_size: int) -> pd.DataFrame:
    """Distinct (invoice, stock_code) pairs of the baskets small enough to mine."""
    pairs = purchases[["invoice", "stock_code"]].drop_duplicates()
    sizes = pairs.groupby("invoice", sort=False)["stock_code"].transform("size")
    return pairs.loc[sizes <= max_basket_size]


def sparse_one_hot(pairs: pd.DataFrame, min_support: float) -> pd.DataFrame:
    """Invoice x product boolean sparse DataFrame of the products that can be frequent at all.

    Dropping products below min_support before FP-growth changes no result (no itemset holding
    one can be frequent) and keeps mlxtend's work small; every basket stays a row, so supports
    are still shares of all baskets.
    """
    invoice_codes, invoices = pd.factorize(pairs["invoice"], sort=True)
    product_codes, products = pd.factorize(pairs["stock_code"], sort=True)
    counts = np.bincount(product_codes, minlength=len(products))
    frequent = counts >= min_support * len(invoices) - 1e-9
    column_of = np.full(len(products), -1)
    column_of[frequent] = np.arange(int(frequent.sum()))
    keep = frequent[product_codes]
    cells = (invoice_codes[keep], column_of[product_codes[keep]])
    matrix = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.uint8), cells),
        shape=(len(invoices), int(frequent.sum())),
    )
    frame = pd.DataFrame.sparse.from_spmatrix(  # type: ignore[attr-defined]
        matrix, index=invoices, columns=[str(code) for code in products[frequent]]
    )
    # Built as uint8 because pandas gives a bool matrix an invalid fill value; mlxtend wants bool.
    return frame.astype(pd.SparseDtype(bool, False))


def rules_from_one_hot(one_hot: pd.DataFrame, settings: BasketSettings) -> pd.DataFrame:
    """mlxtend fpgrowth + association_rules on a one-hot basket table; metrics as mlxtend gives."""
    if one_hot.shape[0] == 0 or one_hot.shape[1] < 2:
        return empty_rules().drop(columns="cluster")
    itemsets = fpgrowth(one_hot, min_support=settings.min_support, use_colnames=True,
                        max_len=settings.max_len)
    if itemsets.empty or int(itemsets["itemsets"].map(len).max()) < 2:
        return empty_rules().drop(columns="cluster")
    extra: dict[str, Any] = {}
    if _TAKES_NUM_ITEMSETS:
        extra["num_itemsets"] = one_hot.shape[0]
    if _TAKES_RETURN_METRICS:  # only what we keep: the others divide by zero on certain rules
        extra["return_metrics"] = ["antecedent support", "consequent support", *METRICS]
    rules = association_rules(itemsets, metric="confidence",
                              min_threshold=settings.min_confidence, **extra)
    rules = rules.loc[rules["lift"] >= settings.min_lift]
    out = pd.DataFrame({
        "antecedents": [tuple(sorted(items)) for items in rules["antecedents"]],
        "consequents": [tuple(sorted(items)) for items in rules["consequents"]],
    })
    for metric in METRICS:
        out[metric] = rules[metric].to_numpy(dtype=float)
    out["conviction"] = out["conviction"].replace([np.inf, -np.inf], np.nan)
    return out


def mine_rules(
    lines: pd.DataFrame,
    assignments: pd.DataFrame,
    *,
    settings: BasketSettings,
    non_product_codes: Sequence[str],
) -> pd.DataFrame:
    """Association rules for all customers (cluster None) and for each cluster of `assignments`.

    Per-cluster baskets are the purchase invoices of that cluster's customers; the all-customer
    rules use every purchase invoice, with or without a customer id. A cluster with fewer than
    `min_baskets` baskets, or without frequent item sets, simply has no rules.
    """
    require_columns(assignments, ("customer_id", "cluster"), "assignments")
    purchases = purchase_lines(lines, non_product_codes)
    cluster_of = assignments.set_index(assignments["customer_id"].astype(str))["cluster"]
    customer = purchases["customer_id"]
    purchases = purchases.assign(
        cluster=customer.where(customer.isna(), customer.astype(str)).map(cluster_of)
    )
    groups: list[tuple[int | None, pd.DataFrame]] = [(None, purchases)]
    for number in sorted(int(value) for value in assignments["cluster"].dropna().unique()):
        groups.append((number, purchases.loc[purchases["cluster"] == number]))

    frames = []
    for cluster, group in groups:
        pairs = basket_items(group, settings.max_basket_size)
        n_baskets = pairs["invoice"].nunique()
        if n_baskets < settings.min_baskets:
            log.info("cluster %s: %d baskets, fewer than min_baskets; no rules", cluster, n_baskets)
            continue
        rules = rules_from_one_hot(sparse_one_hot(pairs, settings.min_support), settings)
        log.info("cluster %s: %d baskets, %d rules", cluster, n_baskets, len(rules))
        if not rules.empty:
            rules.insert(0, "cluster", pd.Series([cluster] * len(rules), dtype=object))
            frames.append(rules)
    if not frames:
        return empty_rules()
    result = pd.concat(frames, ignore_index=True)
    order_key = result["cluster"].map(lambda value: -1 if value is None else value)
    result = result.assign(_order=order_key).sort_values(
        ["_order", "lift", "confidence", "antecedents", "consequents"],
        ascending=[True, False, False, True, True], kind="mergesort",
    )
    return result.drop(columns="_order").reset_index(drop=True)[RULE_COLUMNS]
