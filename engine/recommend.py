"""Top-N product recommendations per customer, with a short human reason each.

score = rule_weight x rules + cooccurrence_weight x co-occurrence + popularity_weight x popularity,
each part in [0, 1]:
- rules: the best `confidence x (1 - 1/lift)` among the customer's cluster's rules (all-customer
  rules when the cluster has none) whose antecedents the customer has all bought;
- co-occurrence: sum over the customer's products i of the cosine similarity of i and j in
  purchase baskets (baskets(i and j) / sqrt(baskets(i) x baskets(j)); baskets above
  `max_basket_size` products left out, each product keeps its `max_neighbours` closest partners),
  divided by the customer's largest sum;
- popularity: share of the customer's cluster that bought the product, divided by the top share
  (plus a trace of overall popularity, which only orders what the cluster never bought).
Products the customer ever bought (or returned) in the lines given are never recommended. Ties
are broken by stock code, so the result is deterministic.

Everything is sparse matrix algebra over customer x product and product x product matrices; the
only Python loop runs over clusters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from engine.baskets import basket_items, purchase_lines, require_columns
from engine.settings import RecommendSettings

log = logging.getLogger(__name__)

GLOBAL_TRACE = 1e-3
RECOMMENDATION_COLUMNS = ["customer_id", "rank", "stock_code", "description", "score", "reason"]


@dataclass(frozen=True)
class Catalogue:
    """Products (sorted by stock code, so column order breaks ties) and customers (sorted by id)."""

    codes: np.ndarray
    descriptions: np.ndarray
    customers: np.ndarray

    def product_index(self, codes: pd.Series) -> np.ndarray:
        return np.asarray(pd.Index(self.codes).get_indexer(codes.astype(str)))

    def customer_index(self, ids: pd.Series) -> np.ndarray:
        return np.asarray(pd.Index(self.customers).get_indexer(ids.astype(str)))


def empty_recommendations() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": pd.Series(dtype=object), "rank": pd.Series(dtype=int),
        "stock_code": pd.Series(dtype=object), "description": pd.Series(dtype=object),
        "score": pd.Series(dtype=float), "reason": pd.Series(dtype=object),
    })


def product_descriptions(purchases: pd.DataFrame, codes: np.ndarray) -> np.ndarray:
    """The most frequent description of each product (alphabetical on ties), else the code."""
    named = purchases.loc[purchases["description"].notna(), ["stock_code", "description"]]
    counts = named.astype(str).value_counts().rename("n").reset_index()
    counts = counts.sort_values(["stock_code", "n", "description"], ascending=[True, False, True])
    best = counts.drop_duplicates("stock_code").set_index("stock_code")["description"]
    found = pd.Series(codes).map(best)
    return np.asarray(found.fillna(pd.Series(codes)), dtype=object)


def indicator(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    """A 0/1 CSR matrix with a one at every (row, col) given (duplicates collapse)."""
    keep = (rows >= 0) & (cols >= 0)
    matrix = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float64), (rows[keep], cols[keep])), shape=shape
    )
    matrix.data[:] = 1.0
    return matrix


def top_per_row(matrix: sparse.csr_matrix, n: int, chunk_rows: int = 1024) -> sparse.csr_matrix:
    """Keep each row's n largest positive entries (ties to the lower column index).

    Works on dense blocks of rows: a row-wise sort finds each row's n-th largest value; only the
    few entries at or above it are sorted, so ties at the boundary still go to the lower column.
    """
    rows, cols, values = [], [], []
    for start in range(0, matrix.shape[0], chunk_rows):
        block = matrix[start:start + chunk_rows].toarray()
        if block.shape[1] > n:
            kth = np.sort(block, axis=1)[:, -n]  # numpy's vectorised sort beats partition here
            block = np.where(block >= kth[:, None], block, 0.0)
        row, col = np.nonzero(block > 0)
        value = block[row, col]
        order = np.lexsort((col, -value, row))
        row, col, value = row[order], col[order], value[order]
        keep = np.arange(len(row)) - np.searchsorted(row, row, side="left") < n
        rows.append(row[keep] + start)
        cols.append(col[keep])
        values.append(value[keep])
    if not rows:
        return sparse.csr_matrix(matrix.shape)
    return sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape
    )


def cooccurrence(
    purchases: pd.DataFrame, catalogue: Catalogue, settings: RecommendSettings
) -> sparse.csr_matrix:
    """Product x product cosine similarity over purchase baskets, diagonal zero, top neighbours.

    Large baskets are left out: a wholesale order of hundreds of products makes everything look
    related to everything (on the real data the cap doubles the hit rate of this part).
    """
    pairs = basket_items(purchases, settings.max_basket_size)
    invoices, _ = pd.factorize(pairs["invoice"])
    baskets = indicator(np.asarray(invoices), catalogue.product_index(pairs["stock_code"]),
                        (int(invoices.max()) + 1 if len(invoices) else 0, len(catalogue.codes)))
    together = (baskets.T @ baskets).tocsr()
    scale = sparse.diags(1.0 / np.sqrt(np.maximum(together.diagonal(), 1.0)))
    together.setdiag(0)
    together.eliminate_zeros()
    return top_per_row((scale @ together @ scale).tocsr(), settings.max_neighbours)


def normalise_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    peaks = matrix.max(axis=1).toarray().ravel()
    return (sparse.diags(1.0 / np.where(peaks > 0, peaks, 1.0)) @ matrix).tocsr()


@dataclass(frozen=True)
class RuleHits:
    """Best rule score per (customer, product) and the rule that gave it."""

    scores: sparse.csr_matrix
    rule_of: dict[tuple[int, int], int]


def rule_matrix(
    rules: pd.DataFrame, catalogue: Catalogue, column: str
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Rules x products indicator of one side of each rule, and each rule's item count."""
    sides = rules[column].reset_index(drop=True)
    rule_ids = np.repeat(np.arange(len(sides)), sides.map(len).to_numpy())
    items = pd.Series([item for side in sides for item in side], dtype=object)
    matrix = indicator(rule_ids, catalogue.product_index(items), (len(sides), len(catalogue.codes)))
    return matrix, sides.map(len).to_numpy()


def rule_scores(
    bought: sparse.csr_matrix, members: np.ndarray, rules: pd.DataFrame, catalogue: Catalogue
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer, product, score, rule) of the best triggered rule per pair, for `members`."""
    nothing = (np.empty(0, int), np.empty(0, int), np.empty(0), np.empty(0, int))
    if rules.empty or len(members) == 0:
        return nothing
    antecedents, sizes = rule_matrix(rules, catalogue, "antecedents")
    consequents, _ = rule_matrix(rules, catalogue, "consequents")
    known = np.asarray(antecedents.sum(axis=1)).ravel() == sizes
    strength = (rules["confidence"] * (1.0 - 1.0 / rules["lift"].clip(lower=1.0))).to_numpy()
    matched = (bought[members] @ antecedents.T).tocoo()
    fired = known[matched.col] & (matched.data >= sizes[matched.col])
    customers, fired_rules = members[matched.row[fired]], matched.col[fired]
    per_rule = np.diff(consequents.indptr)[fired_rules]
    offsets = np.arange(per_rule.sum()) - np.repeat(np.cumsum(per_rule) - per_rule, per_rule)
    positions = np.repeat(consequents.indptr[fired_rules], per_rule) + offsets
    customer = np.repeat(customers, per_rule)
    rule = np.repeat(fired_rules, per_rule)
    product = consequents.indices[positions]
    score = strength[rule]
    order = np.lexsort((rule, -score, product, customer))
    customer, product, score, rule = customer[order], product[order], score[order], rule[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (customer[1:] != customer[:-1]) | (product[1:] != product[:-1])
    rule_index = rules.index.to_numpy()[rule[first]]
    return customer[first], product[first], score[first], rule_index


def popular_candidates(
    bought: sparse.csr_matrix, members: np.ndarray, popularity: np.ndarray, top_n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cluster's most popular products, enough of them that each member has top_n unbought."""
    ranked = np.lexsort((np.arange(len(popularity)), -popularity))
    ranked = ranked[popularity[ranked] > 0]
    width = min(len(ranked), 2 * top_n)
    while True:
        already = np.asarray(bought[members][:, ranked[:width]].sum(axis=1)).ravel()
        if width >= len(ranked) or (width - already).min(initial=width) >= top_n:
            break
        width = min(len(ranked), width * 2)
    columns = ranked[:width]
    customer = np.repeat(members, len(columns))
    product = np.tile(columns, len(members))
    return customer, product, popularity[product]


def best_trigger(
    rows: np.ndarray, cols: np.ndarray, bought: sparse.csr_matrix, neighbours: sparse.csr_matrix
) -> np.ndarray:
    """For each (customer, product) pair, the bought product most similar to the product."""
    counts = np.diff(bought.indptr)[rows]
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    items = bought.indices[np.repeat(bought.indptr[rows], counts) + offsets]
    pair = np.repeat(np.arange(len(rows)), counts)
    strength = np.asarray(neighbours[items, np.repeat(cols, counts)]).ravel()
    order = np.lexsort((items, -strength, pair))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair[order][1:] != pair[order][:-1]
    best = np.full(len(rows), -1)
    best[pair[order][first]] = items[order][first]
    return best


def explain(
    row: np.ndarray, col: np.ndarray,
    from_rule: np.ndarray, from_cooc: np.ndarray, from_pop: np.ndarray, *,
    rules: pd.DataFrame, rule_of: pd.Series, bought: sparse.csr_matrix,
    neighbours: sparse.csr_matrix, catalogue: Catalogue,
    tiers: np.ndarray | None, clusters: np.ndarray,
) -> np.ndarray:
    """A short reason per recommendation, from the part that contributed most to its score."""
    describe = pd.Series(catalogue.descriptions, index=catalogue.codes)
    groups = tiers[row] if tiers is not None else np.array([f"cluster {c}" for c in clusters[row]])
    reasons = np.array([f"popular with {group} customers" for group in groups], dtype=object)
    use_rule = (from_rule > 0) & (from_rule >= from_cooc) & (from_rule >= from_pop)
    use_cooc = ~use_rule & (from_cooc > 0) & (from_cooc >= from_pop)
    if use_rule.any():
        keys = row[use_rule] * len(catalogue.codes) + col[use_rule]
        sides = rules.loc[rule_of.loc[keys].to_numpy(), "antecedents"]
        reasons[use_rule] = [
            "often bought with " + " and ".join(str(describe.get(code, code)) for code in side)
            for side in sides
        ]
    if use_cooc.any():
        trigger = best_trigger(row[use_cooc], col[use_cooc], bought, neighbours)
        names = catalogue.descriptions[trigger]
        reasons[use_cooc] = [f"often bought with {name}" for name in names]
    return reasons


def recommend(
    lines: pd.DataFrame,
    assignments: pd.DataFrame,
    rules: pd.DataFrame,
    *,
    settings: RecommendSettings,
    non_product_codes: Sequence[str],
) -> pd.DataFrame:
    """Top `settings.top_n` unbought products for every customer in `assignments`."""
    require_columns(lines, ("invoice", "stock_code", "description", "customer_id", "is_return"),
                    "lines")
    require_columns(assignments, ("customer_id", "cluster"), "assignments")
    require_columns(rules, ("cluster", "antecedents", "consequents", "confidence", "lift"), "rules")
    purchases = purchase_lines(lines, non_product_codes)
    if assignments.empty or purchases.empty:
        return empty_recommendations()
    codes = np.sort(purchases["stock_code"].astype(str).unique())
    customers = np.sort(assignments["customer_id"].astype(str).unique())
    catalogue = Catalogue(codes, product_descriptions(purchases, codes), customers)
    shape = (len(customers), len(codes))

    known = lines.loc[lines["customer_id"].notna() & lines["stock_code"].notna()]
    ever = indicator(catalogue.customer_index(known["customer_id"]),
                     catalogue.product_index(known["stock_code"]), shape)
    owned = purchases.loc[purchases["customer_id"].notna()]
    bought = indicator(catalogue.customer_index(owned["customer_id"]),
                       catalogue.product_index(owned["stock_code"]), shape)
    neighbours = cooccurrence(purchases, catalogue, settings)
    cooc = normalise_rows(bought @ neighbours)

    people = assignments.assign(customer_id=assignments["customer_id"].astype(str))
    people = people.drop_duplicates("customer_id").set_index("customer_id").loc[customers]
    clusters = people["cluster"].to_numpy()
    tiers = people["value_tier"].astype(str).to_numpy() if "value_tier" in people else None
    everyone = np.asarray(bought.sum(axis=0)).ravel()
    overall = everyone / max(everyone.max(initial=0), 1)

    rule_parts: list[tuple[np.ndarray, ...]] = []
    pop_parts: list[tuple[np.ndarray, ...]] = []
    for cluster in pd.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        own = rules.loc[rules["cluster"].map(lambda value, c=cluster: value is not None
                                              and not pd.isna(value) and value == c)]
        if own.empty:
            own = rules.loc[rules["cluster"].map(lambda value: value is None or pd.isna(value))]
        rule_parts.append(rule_scores(bought, members, own, catalogue))
        counts = np.asarray(bought[members].sum(axis=0)).ravel()
        # A trace of overall popularity ranks the products nobody in the cluster bought, so a
        # customer who has everything their cluster buys still gets top_n recommendations.
        popularity = counts / max(counts.max(initial=0), 1) + GLOBAL_TRACE * overall
        pop_parts.append(popular_candidates(ever, members, popularity, settings.top_n))

    rule_c, rule_p, rule_s, rule_id = (np.concatenate(p) for p in zip(*rule_parts, strict=True))
    rule_score = sparse.csr_matrix((rule_s, (rule_c, rule_p)), shape=shape)
    pop_c, pop_p, pop_s = (np.concatenate(part) for part in zip(*pop_parts, strict=True))
    pop_score = sparse.csr_matrix((pop_s, (pop_c, pop_p)), shape=shape)

    total = (settings.rule_weight * rule_score + settings.cooccurrence_weight * cooc
             + settings.popularity_weight * pop_score).tocsr()
    total = (total - total.multiply(ever)).tocsr()
    total.eliminate_zeros()
    top = top_per_row(total, settings.top_n).tocoo()
    order = np.lexsort((top.col, -top.data, top.row))
    row, col, score = top.row[order], top.col[order], top.data[order]
    if len(row) == 0:
        return empty_recommendations()
    rank = np.arange(len(row)) - np.searchsorted(row, row, side="left") + 1

    from_rule = settings.rule_weight * np.asarray(rule_score[row, col]).ravel()
    from_cooc = settings.cooccurrence_weight * np.asarray(cooc[row, col]).ravel()
    from_pop = settings.popularity_weight * np.asarray(pop_score[row, col]).ravel()
    reasons = explain(
        row, col, from_rule, from_cooc, from_pop,
        rules=rules, rule_of=pd.Series(rule_id, index=rule_c * shape[1] + rule_p),
        bought=bought, neighbours=neighbours, catalogue=catalogue, tiers=tiers, clusters=clusters,
    )
    return pd.DataFrame({
        "customer_id": customers[row], "rank": rank.astype(int), "stock_code": codes[col],
        "description": catalogue.descriptions[col], "score": score, "reason": reasons,
    })[RECOMMENDATION_COLUMNS]
