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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlxtend.frequent_patterns import association_rules, fpgrowth
from scipy import sparse

from engine.rfm import require_columns
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


def empty_rules() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=float) for column in RULE_COLUMNS})
    return frame.astype({"cluster": object, "antecedents": object, "consequents": object})


def purchase_mask(lines: pd.DataFrame, non_product_codes: Sequence[str]) -> np.ndarray:
    """True for purchase lines of real products: no returns, no postage/fee codes, a stock code."""
    require_columns(lines, LINE_COLUMNS, "lines")
    return np.asarray(
        ~lines["is_return"].astype(bool)
        & lines["stock_code"].notna()
        & ~lines["stock_code"].isin(list(non_product_codes)),
        dtype=bool,
    )


def purchase_lines(lines: pd.DataFrame, non_product_codes: Sequence[str]) -> pd.DataFrame:
    """Purchase lines of real products: no returns, no postage/fee codes, a stock code present."""
    return lines.loc[purchase_mask(lines, non_product_codes)]


def codes_of(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per value, -1 when missing; the distinct values as sorted strings)."""
    codes, uniques = pd.factorize(values)
    names, remap = np.unique(np.asarray(uniques, dtype=object).astype(str), return_inverse=True)
    coded = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1) if len(uniques) else codes
    return coded.astype(np.int64), names.astype(object)


@dataclass(frozen=True)
class CodedLines:
    """The lines as integer codes, computed once so no later step works on strings.

    `products` are the sorted stock codes of purchase lines (the products that exist for baskets
    and recommendations); `product` is -1 on a line whose stock code is not one of them (missing,
    non-product, or only ever returned). `customer` indexes the sorted `customers`, -1 if missing.
    """

    purchase: np.ndarray
    invoice: np.ndarray
    product: np.ndarray
    customer: np.ndarray
    products: np.ndarray
    customers: np.ndarray

    @classmethod
    def of(cls, lines: pd.DataFrame, non_product_codes: Sequence[str]) -> CodedLines:
        purchase = purchase_mask(lines, non_product_codes)
        stock, stock_names = codes_of(lines["stock_code"])
        bought = np.zeros(len(stock_names), dtype=bool)
        bought[stock[purchase]] = True
        product_of = np.full(len(stock_names) + 1, -1, dtype=np.int64)  # last slot: code -1
        product_of[:-1][bought] = np.arange(int(bought.sum()))
        invoice, _ = pd.factorize(lines["invoice"])
        customer, customers = codes_of(lines["customer_id"])
        return cls(purchase=purchase, invoice=invoice.astype(np.int64), product=product_of[stock],
                   customer=customer, products=stock_names[bought], customers=customers)


def distinct_sorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values ascending, how often each occurs) of an integer array.

    np.unique does the same but is an order of magnitude slower on large integer arrays here
    (numpy 2.4); a stable sort is fast on our keys, which arrive nearly sorted.
    """
    ordered = np.sort(values, kind="stable")
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(first)
    return ordered[starts], np.diff(np.append(starts, len(ordered)))


def distinct_baskets(
    invoice: np.ndarray, product: np.ndarray, n_products: int, max_basket_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (invoice, product) pairs of the baskets with at most max_basket_size products;
    invoices renumbered 0..n_baskets-1 in order."""
    keys, _ = distinct_sorted(invoice * max(n_products, 1) + product)  # by invoice, product
    baskets, products = np.divmod(keys, max(n_products, 1))
    first = np.ones(len(keys), dtype=bool)
    first[1:] = baskets[1:] != baskets[:-1]
    sizes = np.diff(np.append(np.flatnonzero(first), len(keys)))
    small = sizes <= max_basket_size
    keep = np.repeat(small, sizes)
    renumbered = np.repeat(np.cumsum(small) - 1, sizes)
    return renumbered[keep].astype(np.int64), products[keep]


def sparse_one_hot(
    basket: np.ndarray, product: np.ndarray, products: np.ndarray, min_support: float
) -> pd.DataFrame:
    """Basket x product boolean sparse DataFrame of the products that can be frequent at all.

    Dropping products below min_support before FP-growth changes no result (no itemset holding
    one can be frequent) and keeps mlxtend's work small; every basket stays a row, so supports
    are still shares of all baskets.
    """
    n_baskets = int(basket.max()) + 1 if len(basket) else 0
    counts = np.bincount(product, minlength=len(products))
    frequent = counts >= min_support * n_baskets - 1e-9
    column_of = np.full(len(products), -1)
    column_of[frequent] = np.arange(int(frequent.sum()))
    keep = frequent[product]
    matrix = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.uint8), (basket[keep], column_of[product[keep]])),
        shape=(n_baskets, int(frequent.sum())),
    )
    frame = pd.DataFrame.sparse.from_spmatrix(  # type: ignore[attr-defined]
        matrix, columns=[str(code) for code in products[frequent]]
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
    coded = CodedLines.of(lines, non_product_codes)
    people = assignments.drop_duplicates("customer_id")
    known = pd.Index(people["customer_id"].astype(str)).get_indexer(pd.Index(coded.customers))
    cluster_numbers = pd.to_numeric(people["cluster"], errors="coerce").to_numpy(dtype=float)
    cluster_of = np.append(np.append(cluster_numbers, np.nan)[known], np.nan)  # -1: NaN
    line_cluster = cluster_of[coded.customer]  # customer -1 picks the trailing NaN
    purchases = coded.purchase
    groups: list[tuple[int | None, np.ndarray]] = [(None, purchases)]
    for number in sorted(int(value) for value in assignments["cluster"].dropna().unique()):
        groups.append((number, purchases & (line_cluster == number)))

    frames = []
    for cluster, selected in groups:
        basket, product = distinct_baskets(coded.invoice[selected], coded.product[selected],
                                           len(coded.products), settings.max_basket_size)
        n_baskets = int(basket.max()) + 1 if len(basket) else 0
        if n_baskets < settings.min_baskets:
            log.info("cluster %s: %d baskets, fewer than min_baskets; no rules", cluster, n_baskets)
            continue
        one_hot = sparse_one_hot(basket, product, coded.products, settings.min_support)
        rules = rules_from_one_hot(one_hot, settings)
        log.info("cluster %s: %d baskets, %d rules", cluster, n_baskets, len(rules))
        if not rules.empty:
            rules.insert(0, "cluster", pd.Series([cluster] * len(rules), dtype=object))
            frames.append(rules)
    if not frames:
        return empty_rules()
    result = pd.concat(frames, ignore_index=True)
    order_key = pd.to_numeric(result["cluster"], errors="coerce").fillna(-1)
    result = result.assign(_order=order_key).sort_values(
        ["_order", "lift", "confidence", "antecedents", "consequents"],
        ascending=[True, False, False, True, True], kind="mergesort",
    )
    return result.drop(columns="_order").reset_index(drop=True)[RULE_COLUMNS]
