"""Market-basket rules per cluster (and for all customers) with mlxtend FP-growth.

A basket is one purchase invoice: returns and non-product codes are left out, and so are baskets
with more distinct products than `max_basket_size` (bulk orders that would relate everything to
everything). Baskets are a SciPy CSR basket x product matrix, never a dense one.

FP-growth is mlxtend's own (its FPTree, FPNode and fpg_step, what
`mlxtend.frequent_patterns.fpgrowth` runs; used only in `fp_growth`), fed differently: `fpgrowth`
inserts the baskets into the tree one by one in a Python loop, most of its time, while here the
distinct baskets (reduced to the frequent products, in mlxtend's item order) are sorted and the
tree's nodes made directly, one per distinct prefix with the summed count. The tree, and so every
item set and support, is the same (the tests compare with `fpgrowth` itself on random baskets);
on the real data about a third of the reduced baskets are distinct, and the basket stage takes
about a third of the time `fpgrowth` on the same sparse matrix takes (docs/benchmarks.md).

`conviction` is infinite when a rule's confidence is 1; it is stored as NaN (None in the
database and in exports), so every column stays a plain finite-or-missing float.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlxtend.frequent_patterns import association_rules
from scipy import sparse

from engine.columns import RULE_COLUMNS
from engine.rfm import codes_of, require_columns, text_codes
from engine.settings import BasketSettings

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class CodedLines:
    """The lines as integer codes, computed once so no later step works on strings (RFM and the
    classes use them too: engine.rfm.coded_customer_lines).

    `products` are the sorted stock codes of purchase lines (the products that exist for baskets
    and recommendations); `product` is -1 on a line whose stock code is not one of them (missing,
    non-product, or only ever returned). `customer` indexes the sorted `customers`, -1 if missing.
    `non_product` marks the lines whose stock code is one of the non-product codes; `invoice` is
    a code per line (-1 if missing) that only tells invoices apart. `stock` indexes the sorted
    `stock_codes`, every stock code of the lines (-1 if missing; int32): the sales figures'.
    """

    purchase: np.ndarray
    invoice: np.ndarray
    product: np.ndarray
    customer: np.ndarray
    products: np.ndarray
    customers: np.ndarray
    non_product: np.ndarray
    stock: np.ndarray
    stock_codes: np.ndarray

    @classmethod
    def of(cls, lines: pd.DataFrame, non_product_codes: Sequence[str]) -> CodedLines:
        # One factorisation per column; the masks of purchase_mask then come from the distinct
        # values (isin on a few thousand codes instead of every line).
        require_columns(lines, LINE_COLUMNS, "lines")
        raw, uniques = pd.factorize(lines["stock_code"])
        listed = np.asarray(pd.Index(uniques).isin(list(non_product_codes)), dtype=bool)
        non_product = np.append(listed, False)[raw]  # code -1 (missing) picks the False
        stock, stock_names = text_codes(raw, uniques)
        purchase = ~lines["is_return"].astype(bool).to_numpy() & (stock >= 0) & ~non_product
        bought = np.zeros(len(stock_names), dtype=bool)
        bought[stock[purchase]] = True
        product_of = np.full(len(stock_names) + 1, -1, dtype=np.int64)  # last slot: code -1
        product_of[:-1][bought] = np.arange(int(bought.sum()))
        invoice, _ = pd.factorize(lines["invoice"])
        customer, customers = codes_of(lines["customer_id"])
        return cls(purchase=purchase, invoice=invoice.astype(np.int64), product=product_of[stock],
                   customer=customer, products=stock_names[bought], customers=customers,
                   non_product=non_product, stock=stock.astype(np.int32), stock_codes=stock_names)


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


def basket_matrix(basket: np.ndarray, product: np.ndarray, products: np.ndarray,
                  min_support: float) -> tuple[sparse.csr_matrix, np.ndarray]:
    """(basket x product 0/1 CSR matrix, its column names) of the products that can be frequent.

    Dropping products below min_support before FP-growth changes no result (no itemset holding
    one can be frequent) and keeps the work small; every basket stays a row, so supports are
    still shares of all baskets.
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
    matrix.sum_duplicates()
    return matrix, np.array([str(code) for code in products[frequent]], dtype=object)


def distinct_rows(matrix: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(one row of each distinct set of columns, how many rows have that set), rows ascending.

    Rows are packed into bits (one per column), so comparing them is comparing a few bytes."""
    n_rows, n_cols = matrix.shape
    if n_rows == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    width = max(8, -(-n_cols // 64) * 8)  # bytes per row, whole 64-bit words
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(matrix.indptr))
    cols = matrix.indices.astype(np.int64)
    packed = np.zeros(n_rows * width, dtype=np.uint8)
    np.bitwise_or.at(packed, rows * width + cols // 8, (1 << (cols % 8)).astype(np.uint8))
    keys = packed.view(np.dtype((np.void, width)))
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    return first[order].astype(np.int64), counts[order].astype(np.int64)


Level = tuple[list[int], list[int], list[int]]  # per node of one depth: item, count, parent


def fp_tree(matrix: sparse.csr_matrix, min_support: float) -> tuple[np.ndarray, int, list[Level]]:
    """The FP-tree `fpgrowth` builds for the baskets (rows): the same frequent items in the same
    order (rarest first), the same nodes and counts, made from the distinct baskets. Returns
    (items in tree order, the root's count, the nodes depth by depth)."""
    n_rows = matrix.shape[0]
    item_support = np.asarray(matrix.sum(axis=0), dtype=np.int64).reshape(-1) / float(n_rows)
    items = np.nonzero(item_support >= min_support)[0]
    ordered = items[item_support[items].argsort()]  # as mlxtend orders them: rarest first
    rank = np.full(matrix.shape[1], -1, dtype=np.int64)
    rank[ordered] = np.arange(len(ordered))
    first, counts = distinct_rows(matrix)
    distinct = matrix[first]
    owner = np.repeat(np.arange(len(first)), np.diff(distinct.indptr))
    item = distinct.indices.astype(np.int64)
    known = rank[item] >= 0
    owner, item = owner[known], item[known]
    order = np.lexsort((-rank[item], owner))  # per basket, most frequent item first
    owner, item = owner[order], item[order]
    # Each distinct basket as a row of ranks in that order, padded with -1; rows sorted
    # lexicographically, so the baskets through one tree node (one prefix) are contiguous.
    sizes = np.bincount(owner, minlength=len(first))
    grid = np.full((len(first), int(sizes.max(initial=0))), -1, dtype=np.int64)
    grid[owner, np.arange(len(owner)) - np.repeat(np.cumsum(sizes) - sizes, sizes)] = rank[item]
    rows = np.lexsort(grid.T[::-1]) if grid.shape[1] else np.arange(len(first))
    # The root counts what inserting every basket adds to it.
    return ordered, int(counts.sum()), prefix_nodes(grid[rows], counts[rows], ordered)


def prefix_nodes(grid: np.ndarray, counts: np.ndarray, ordered: np.ndarray) -> list[Level]:
    """The nodes FPTree.insert_itemset would make for these baskets (rows of item ranks,
    lexicographically sorted, -1 padded), made directly: a node per distinct prefix, its count
    the sum of the counts of the baskets through it, depth by depth; a node's parent is its
    index in the depth above (the root at depth 0)."""
    if not grid.size:
        return []
    present = grid >= 0
    new = present.copy()  # the row starts a node at this depth: its prefix differs from above
    new[1:] &= np.logical_or.accumulate(grid[1:] != grid[:-1], axis=1)
    node_of = np.cumsum(new, axis=0) - 1  # node index per (row, depth) where present
    levels: list[Level] = []
    for depth in range(grid.shape[1]):
        starts = np.flatnonzero(new[:, depth])
        inside = present[:, depth]
        totals = np.bincount(node_of[inside, depth], weights=counts[inside],
                             minlength=len(starts)).astype(np.int64)
        above = node_of[starts, depth - 1].tolist() if depth else [0] * len(starts)
        levels.append((ordered[grid[starts, depth]].tolist(), totals.tolist(), above))
    return levels


def fp_growth(ordered: np.ndarray, root_count: int, levels: list[Level], minimum: int,
              max_len: int | None) -> list[tuple[int, tuple[int, ...]]]:
    """(count, items) of every item set mlxtend's FP-growth finds in the tree fp_tree made.

    The one use of mlxtend's private FP-growth API (fpcommon.FPTree, FPNode and fpgrowth.fpg_step,
    what `mlxtend.frequent_patterns.fpgrowth` runs after inserting the baskets one by one): the
    same in mlxtend 0.23.1 to 0.24.x, the range pinned in pyproject.toml. The tests compare the
    result with `fpgrowth` itself on random baskets."""
    from mlxtend.frequent_patterns.fpcommon import FPNode, FPTree
    from mlxtend.frequent_patterns.fpgrowth import fpg_step

    tree = FPTree({int(item): position for position, item in enumerate(ordered)})
    tree.root.count = root_count
    parents: list[Any] = [tree.root]
    for items, counts, above in levels:
        nodes = []
        for item, count, parent in zip(items, counts, above, strict=True):
            node = FPNode(item, count, parents[parent])
            tree.nodes[item].append(node)
            nodes.append(node)
        parents = nodes
    return [(count, tuple(items)) for count, items in fpg_step(tree, minimum, None, max_len, 0)]


def frequent_itemsets(matrix: sparse.csr_matrix, columns: np.ndarray,
                      settings: BasketSettings) -> pd.DataFrame:
    """FP-growth on the baskets: support and itemsets (frozensets of column names), as
    `mlxtend.frequent_patterns.fpgrowth(..., use_colnames=True)` returns them."""
    n_rows = matrix.shape[0]
    minimum = math.ceil(settings.min_support * n_rows)  # as fpgrowth counts it
    supports, itemsets = [], []
    for count, items in fp_growth(*fp_tree(matrix, settings.min_support), minimum,
                                  settings.max_len):
        support = count / float(n_rows)
        if support >= settings.min_support:
            supports.append(support)
            itemsets.append(frozenset(columns[item] for item in items))
    return pd.DataFrame({"support": supports, "itemsets": itemsets})


def rules_from_baskets(matrix: sparse.csr_matrix, columns: np.ndarray,
                       settings: BasketSettings) -> pd.DataFrame:
    """FP-growth + mlxtend association_rules on a basket x product matrix; metrics as mlxtend
    gives them."""
    if matrix.shape[0] == 0 or matrix.shape[1] < 2:
        return empty_rules().drop(columns="cluster")
    return rules_from_itemsets(frequent_itemsets(matrix, columns, settings), matrix.shape[0],
                               settings)


def rules_from_itemsets(itemsets: pd.DataFrame, n_baskets: int,
                        settings: BasketSettings) -> pd.DataFrame:
    """mlxtend association_rules on frequent item sets (support, itemsets as frozensets of stock
    codes) of n_baskets baskets, kept by min_lift; both backends end here."""
    if itemsets.empty or int(itemsets["itemsets"].map(len).max()) < 2:
        return empty_rules().drop(columns="cluster")
    extra: dict[str, Any] = {}
    if _TAKES_NUM_ITEMSETS:
        extra["num_itemsets"] = n_baskets
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
    coded: CodedLines | None = None,
) -> pd.DataFrame:
    """Association rules for all customers (cluster None) and for each cluster of `assignments`.

    Per-cluster baskets are the purchase invoices of that cluster's customers; the all-customer
    rules use every purchase invoice, with or without a customer id. A cluster with fewer than
    `min_baskets` baskets, or without frequent item sets, simply has no rules. ``coded``
    (optional) is ``CodedLines.of(lines, non_product_codes)``, already made.
    """
    require_columns(assignments, ("customer_id", "cluster"), "assignments")
    if coded is None:
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
        matrix, columns = basket_matrix(basket, product, coded.products, settings.min_support)
        rules = rules_from_baskets(matrix, columns, settings)
        log.info("cluster %s: %d baskets, %d rules", cluster, n_baskets, len(rules))
        if not rules.empty:
            rules.insert(0, "cluster", pd.Series([cluster] * len(rules), dtype=object))
            frames.append(rules)
    return ordered_rules(frames)


def ordered_rules(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The clusters' rules in one frame, all-customer rules first, then by cluster, lift,
    confidence and the item sets."""
    if not frames:
        return empty_rules()
    result = pd.concat(frames, ignore_index=True)
    order_key = pd.to_numeric(result["cluster"], errors="coerce").fillna(-1)
    result = result.assign(_order=order_key).sort_values(
        ["_order", "lift", "confidence", "antecedents", "consequents"],
        ascending=[True, False, False, True, True], kind="mergesort",
    )
    return result.drop(columns="_order").reset_index(drop=True)[RULE_COLUMNS]
