"""Top-N product recommendations per customer, with a short human reason each.

score = (ease_weight x EASE + rule_weight x rules + cooccurrence_weight x co-occurrence
         + neighbour_weight x customers like you + trending_weight x trending
         + popularity_weight x popularity) x (1 + trending_boost x trending),
each part in [0, 1] (weights chosen with `segmint evaluate` on a validation cutoff, 2011-08-01,
never the reported ones; docs/recommendations.md has the table and each part's gain; as shipped
only EASE, rules and popularity are on, with the trending boost below: the other three gained
nothing beside EASE there, and a part whose weight is 0 is not computed):
- EASE: item-item weights learnt in closed form from recency-weighted purchases, summed over
  the customer's products, divided by the customer's largest (engine/recommend_ease.py); its
  reason is "often bought with X", X the customer's product with the largest weight;
- rules: the best `confidence x (1 - 1/lift)` among the customer's cluster's rules (all-customer
  rules when the cluster has none) whose antecedents the customer has all bought;
- co-occurrence: sum over the customer's products i of the cosine similarity of i and j in
  purchase baskets (baskets(i and j) / sqrt(baskets(i) x baskets(j)); baskets above
  `max_basket_size` products left out, each product keeps its `max_neighbours` closest partners),
  divided by the customer's largest sum;
- customers like you: the customer's `neighbours` most similar customers among those who bought
  in the last `neighbour_days` before as_of (product of BM25-weighted customer x product
  invoice counts), each product scored by the summed similarity of the neighbours who bought it
  in those days, divided by the customer's largest score. Only recent buyers are candidate
  neighbours, at most `neighbour_pool` of them (the most active), so the cost grows with the
  customers, not customers squared;
- trending: what is rising in the last `trending_days` before as_of: customers who bought the
  product then, over 1 + a third of those who bought it in the 12 weeks before (a product that
  sells steadily is not "trending"), divided by the top product's figure; the same for everyone;
- popularity: share of the customer's cluster that bought the product, divided by the top share
  (plus a trace of overall popularity, which only orders what the cluster never bought), for the
  cluster's most popular products (enough that every member has top_n of them unbought).
The sum is then multiplied, per product, by 1 + trending_boost x trending: what goes with the
customer's products and is rising now (the seasonal ramp) comes first. The boost orders, it
does not add candidates: a product none of the parts scores stays at 0.
The two time-based parts need the lines' `ts` and an as_of (default: the day after the last line);
without a `ts` column they score 0.
Products the customer ever bought (or returned) in the lines given are never recommended. Ties
are broken by stock code, so the result is deterministic.

Stock codes and customers are integer-coded once; scores are computed for blocks of customers of
one cluster at a time (a dense block of at most `BLOCK_CELLS` scores), so memory stays bounded
however many customers there are. The Python loops run over clusters and blocks, never customers.
The two time-based parts and the shared matrix helpers are engine/recommend_signals.py.

Two halves: `recommend_inputs` aggregates the lines frame into what the scores read
(`RecommendInputs`: products, descriptions, the customer x product purchase matrices, the
co-occurrence neighbours, the time-based counts), and `rank_recommendations` scores and ranks
from those alone. The Spark backend (engine/spark/recommend.py) makes the same inputs in Spark
and ranks with the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy import sparse

from engine.baskets import CodedLines, distinct_baskets, distinct_sorted
from engine.columns import RECOMMENDATION_COLUMNS
from engine.recommend_ease import ItemWeights, latest_weights
from engine.recommend_signals import TimeCounts, TimeSignals, indicator, row_normalised
from engine.rfm import require_columns
from engine.settings import RecommendSettings

log = logging.getLogger(__name__)

GLOBAL_TRACE = 1e-3
LIKE_YOU = "popular with customers like you"
TRENDING = "trending this month"
BLOCK_CELLS = 1 << 20  # scores per dense block of customers x products (8 MiB as float64)
RULE_INPUT_COLUMNS = ("cluster", "antecedents", "consequents", "confidence", "lift")


def empty_recommendations() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": pd.Series(dtype=object), "rank": pd.Series(dtype=int),
        "stock_code": pd.Series(dtype=object), "description": pd.Series(dtype=object),
        "score": pd.Series(dtype=float), "reason": pd.Series(dtype=object),
    })


def product_descriptions(lines: pd.DataFrame, coded: CodedLines) -> np.ndarray:
    """The most frequent description of each product on purchase lines (alphabetical on ties),
    else the stock code."""
    named = coded.purchase & (coded.product >= 0) & lines["description"].notna().to_numpy()
    text, names = pd.factorize(lines["description"].to_numpy()[named])
    names = np.asarray(names, dtype=object).astype(str)
    keys, counts = distinct_sorted(coded.product[named] * max(len(names), 1) + text)
    product, description = np.divmod(keys, max(len(names), 1))
    return most_frequent_descriptions(coded.products, product, names[description], counts)


def most_frequent_descriptions(products: np.ndarray, product: np.ndarray,
                               description: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per product (products: the stock codes), the description with the most purchase lines
    (alphabetical on ties), else the stock code; from (product, description, lines) triples,
    one per distinct pair."""
    names, alphabetical = np.unique(np.asarray(description, dtype=object).astype(str),
                                    return_inverse=True)
    order = np.lexsort((alphabetical, -np.asarray(counts), product))
    product, description = product[order], names[alphabetical[order]]
    first = np.ones(len(product), dtype=bool)
    first[1:] = product[1:] != product[:-1]
    found = products.copy()
    found[product[first]] = description[first]
    return found


def top_in_block(block: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, value) of each row's n largest positive entries, rows ascending, values
    descending, ties to the lower column."""
    if block.shape[1] > n:
        # the n-th smallest of the negated block: numpy selects this fast even when most
        # entries are equal (zeros), unlike the (P - n)-th smallest of the block itself.
        # Negated in place and back (exact), so the only copy is the partition's.
        np.negative(block, out=block)
        kth = -np.partition(block, n - 1, axis=1)[:, n - 1]
        np.negative(block, out=block)
        candidate = (block >= kth[:, None]) & (block > 0)
    else:
        candidate = block > 0
    row, col = np.nonzero(candidate)
    value = block[row, col]
    order = np.lexsort((col, -value, row))
    row, col, value = row[order], col[order], value[order]
    keep = np.arange(len(row)) - np.searchsorted(row, row, side="left") < n
    return row[keep], col[keep], value[keep]


def block_rows(n_rows: int, n_cols: int) -> Iterator[tuple[int, int]]:
    step = max(1, BLOCK_CELLS // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield start, min(start + step, n_rows)


def cooccurrence(coded: CodedLines, settings: RecommendSettings) -> sparse.csr_matrix:
    """Product x product cosine similarity over purchase baskets, diagonal zero, top neighbours.

    Large baskets are left out: a wholesale order of hundreds of products makes everything look
    related to everything (on the real data the cap doubles the hit rate of this part).
    """
    n = len(coded.products)
    basket, product = distinct_baskets(coded.invoice[coded.purchase],
                                       coded.product[coded.purchase], n, settings.max_basket_size)
    n_baskets = int(basket.max()) + 1 if len(basket) else 0
    baskets = indicator(basket, product, (n_baskets, n))
    # Baskets holding each product: the diagonal of baskets.T @ baskets (the indicator is 0/1).
    scale = 1.0 / np.sqrt(np.maximum(np.asarray(baskets.sum(axis=0), dtype=float).ravel(), 1.0))
    by_product = baskets.T.tocsr()
    parts = []
    # The product x product counts are made a block of products at a time and cut to each
    # product's top neighbours at once: the whole matrix (millions of pairs) is never held.
    for start, stop in block_rows(n, n):
        together = (by_product[start:stop] @ baskets).tocsr()
        together.setdiag(0, k=start)
        together.eliminate_zeros()
        together.sort_indices()
        rows = np.repeat(np.arange(start, stop), np.diff(together.indptr))
        together.data = together.data * scale[rows] * scale[together.indices]
        row, col, value = top_in_block(together.toarray(), settings.max_neighbours)
        parts.append((row + start, col, value))
    row, col, value = (np.concatenate(part) for part in zip(*parts, strict=True))
    return sparse.csr_matrix((value, (row, col)), shape=(n, n))


@dataclass(frozen=True)
class RuleSet:
    """One cluster's rules as product indicator matrices, with each rule's strength."""

    antecedents: sparse.csr_matrix  # rules x products
    consequents: sparse.csr_matrix
    sizes: np.ndarray  # items per antecedent
    usable: np.ndarray  # every antecedent item is a known product
    strength: np.ndarray
    positions: np.ndarray  # the rule's row in the whole rules frame

    @classmethod
    def of(cls, rules: pd.DataFrame, positions: np.ndarray, products: pd.Index) -> RuleSet:
        chosen = rules.iloc[positions]
        antecedents, sizes = side_matrix(chosen["antecedents"], products)
        consequents, _ = side_matrix(chosen["consequents"], products)
        usable = np.asarray(antecedents.sum(axis=1)).ravel() == sizes
        lift = chosen["lift"].to_numpy(dtype=float)
        strength = chosen["confidence"].to_numpy(dtype=float) * (1.0 - 1.0 / np.maximum(lift, 1.0))
        return cls(antecedents, consequents, sizes, usable, strength, positions)

    def best(self, bought: sparse.csr_matrix) -> tuple[np.ndarray, ...]:
        """(row, product, score, rule position) of the best rule each row triggers per product."""
        matched = (bought @ self.antecedents.T).tocoo()
        fired = self.usable[matched.col] & (matched.data >= self.sizes[matched.col])
        rows, fired_rules = matched.row[fired], matched.col[fired]
        per_rule = np.diff(self.consequents.indptr)[fired_rules]
        offsets = np.arange(per_rule.sum()) - np.repeat(np.cumsum(per_rule) - per_rule, per_rule)
        product = self.consequents.indices[np.repeat(self.consequents.indptr[fired_rules],
                                                     per_rule) + offsets]
        row, rule = np.repeat(rows, per_rule), np.repeat(fired_rules, per_rule)
        score = self.strength[rule]
        order = np.lexsort((rule, -score, product, row))
        row, product, score, rule = row[order], product[order], score[order], rule[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (row[1:] != row[:-1]) | (product[1:] != product[:-1])
        return row[first], product[first], score[first], self.positions[rule[first]]


def side_matrix(sides: pd.Series, products: pd.Index) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Rules x products indicator of one side of each rule, and each side's item count."""
    sizes = np.fromiter((len(side) for side in sides), dtype=np.int64, count=len(sides))
    items = np.array([str(item) for side in sides for item in side], dtype=object)
    rule_ids = np.repeat(np.arange(len(sides)), sizes)
    matrix = indicator(rule_ids, np.asarray(products.get_indexer(pd.Index(items))),
                       (len(sides), len(products)))
    return matrix, sizes


def cluster_rule_sets(rules: pd.DataFrame, clusters: np.ndarray,
                      products: pd.Index) -> dict[int, RuleSet]:
    """Each cluster's own rules, or the all-customer rules when it has none."""
    labels = pd.to_numeric(rules["cluster"], errors="coerce").to_numpy(dtype=float)
    everyone = RuleSet.of(rules, np.flatnonzero(np.isnan(labels)), products)
    sets = {}
    for cluster in np.unique(clusters):
        own = np.flatnonzero(labels == cluster)
        sets[int(cluster)] = RuleSet.of(rules, own, products) if len(own) else everyone
    return sets


def popularity_scores(bought: sparse.csr_matrix, ever: sparse.csr_matrix, members: np.ndarray,
                      overall: np.ndarray, top_n: int) -> np.ndarray:
    """The cluster's popularity of each product, kept for its most popular products only: enough
    of them that each member has top_n unbought (the rest score 0)."""
    counts = np.asarray(bought[members].sum(axis=0)).ravel()
    # A trace of overall popularity ranks the products nobody in the cluster bought, so a
    # customer who has everything their cluster buys still gets top_n recommendations.
    popularity = counts / max(counts.max(initial=0), 1) + GLOBAL_TRACE * overall
    ranked = np.lexsort((np.arange(len(popularity)), -popularity))
    ranked = ranked[popularity[ranked] > 0]
    width = min(len(ranked), 2 * top_n)
    owned = ever[members]
    while True:
        already = np.asarray(owned[:, ranked[:width]].sum(axis=1)).ravel()
        if width >= len(ranked) or (width - already).min(initial=width) >= top_n:
            break
        width = min(len(ranked), width * 2)
    kept = np.zeros(len(popularity))
    kept[ranked[:width]] = popularity[ranked[:width]]
    return kept


@dataclass(frozen=True)
class SimilarLists:
    """For each product, the products that have it among their neighbours, most similar first
    (ties to the lower index): the CSR layout of the transposed neighbour matrix, each row's
    entries reordered."""

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def of(cls, neighbours: sparse.csr_matrix) -> SimilarLists:
        similar = neighbours.T.tocsr()
        row = np.repeat(np.arange(similar.shape[0]), np.diff(similar.indptr))
        order = np.lexsort((similar.indices, -similar.data, row))
        return cls(similar.indptr.astype(np.int64), similar.indices[order].astype(np.int64))


def best_trigger(rows: np.ndarray, cols: np.ndarray, owned: np.ndarray,
                 similar: SimilarLists) -> np.ndarray:
    """For each (row, product) pair, the row's product most similar to the product, ties to the
    lower index: the first product of the product's similar list that the row owns (``owned``
    is a dense boolean rows x products block). Every pair must own one; all pairs step down
    their lists together, usually for a few steps only."""
    found = np.full(len(rows), -1, dtype=np.int64)
    position = similar.indptr[cols].copy()
    end = similar.indptr[cols + 1]
    pending = np.arange(len(rows))
    while len(pending):
        pending = pending[position[pending] < end[pending]]
        item = similar.indices[position[pending]]
        hit = owned[rows[pending], item]
        found[pending[hit]] = item[hit]
        pending = pending[~hit]
        position[pending] += 1
    return found


def lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray,
           missing: float | int) -> np.ndarray:
    """values[i] where keys[i] == query (keys ascending and distinct), else `missing`."""
    if len(keys) == 0:
        return np.full(len(query), missing, dtype=values.dtype)
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[at] == query, values[at], missing)


@dataclass(frozen=True)
class RecommendInputs:
    """What the ranking reads of the lines, aggregated: product-level tables and the
    customer x product ones as sparse matrices (`recommend_inputs` makes them from the lines
    frame, engine.spark.recommend in Spark). Rows are `customers`, columns `products`."""

    customers: np.ndarray  # customer ids, sorted (people_of)
    products: np.ndarray  # stock codes of purchase lines, sorted
    descriptions: np.ndarray  # per product (product_descriptions)
    ever: sparse.csr_matrix  # customers x products, 0/1: any line (a purchase or a return)
    bought: sparse.csr_matrix  # customers x products, 0/1: a purchase line
    neighbours: sparse.csr_matrix  # products x products (cooccurrence; empty at weight 0)
    time_counts: TimeCounts | None  # None: the time-based parts score 0
    # customers x products: what EASE is fitted on (ease_training); None: `bought` itself
    ease_training: sparse.csr_matrix | None = None


def uses_time_counts(settings: RecommendSettings) -> bool:
    """Whether the ranking reads TimeCounts (customers like you, trending, the trending boost)."""
    return (settings.neighbour_weight > 0 or settings.trending_weight > 0
            or settings.trending_boost > 0)


def people_of(assignments: pd.DataFrame) -> pd.DataFrame:
    """The assignments, one row per customer (customer_id as text), ordered by customer id."""
    people = assignments.assign(customer_id=assignments["customer_id"].astype(str))
    return people.drop_duplicates("customer_id").sort_values("customer_id")


def recommend_inputs(lines: pd.DataFrame, coded: CodedLines, customers: np.ndarray,
                     settings: RecommendSettings, as_of: date | None) -> RecommendInputs:
    """RecommendInputs of a lines frame (coded: its CodedLines) for `customers` (people_of)."""
    codes = coded.products
    shape = (len(customers), len(codes))
    row_of = np.append(pd.Index(customers).get_indexer(coded.customers), -1)[coded.customer]
    ever = indicator(row_of, coded.product, shape)
    bought = indicator(np.where(coded.purchase, row_of, -1), coded.product, shape)
    neighbours = (cooccurrence(coded, settings) if settings.cooccurrence_weight > 0
                  else sparse.csr_matrix((len(codes), len(codes))))
    timed = (TimeCounts.of(lines, coded, row_of, shape, as_of, settings)
             if uses_time_counts(settings) else None)
    training = (ease_training(lines, coded, row_of, shape, as_of, settings)
                if settings.ease_weight > 0 else None)
    descriptions = product_descriptions(lines, coded)
    return RecommendInputs(customers, codes, descriptions, ever, bought, neighbours, timed,
                           training)


def recommend(
    lines: pd.DataFrame,
    assignments: pd.DataFrame,
    rules: pd.DataFrame,
    *,
    settings: RecommendSettings,
    non_product_codes: Sequence[str],
    coded: CodedLines | None = None,
    as_of: date | None = None,
) -> pd.DataFrame:
    """Top `settings.top_n` unbought products for every customer in `assignments`.
    ``coded`` (optional) is ``CodedLines.of(lines, non_product_codes)``, already made; ``as_of``
    (default: the day after the last purchase line) ends the recent and trending windows."""
    require_columns(lines, ("invoice", "stock_code", "description", "customer_id", "is_return"),
                    "lines")
    require_columns(assignments, ("customer_id", "cluster"), "assignments")
    require_columns(rules, RULE_INPUT_COLUMNS, "rules")
    if coded is None:
        coded = CodedLines.of(lines, non_product_codes)
    if assignments.empty or not coded.purchase.any():
        return empty_recommendations()
    people = people_of(assignments)
    inputs = recommend_inputs(lines, coded, people["customer_id"].to_numpy(dtype=object),
                              settings, as_of)
    return rank_recommendations(inputs, people, rules, settings=settings)


def rank_recommendations(inputs: RecommendInputs, people: pd.DataFrame, rules: pd.DataFrame,
                         *, settings: RecommendSettings) -> pd.DataFrame:
    """The recommendations of `people` (people_of: their customer ids are inputs.customers)
    from the aggregated inputs and the rules; the same code on both backends."""
    customers, codes, descriptions = inputs.customers, inputs.products, inputs.descriptions
    ever, bought, neighbours = inputs.ever, inputs.bought, inputs.neighbours
    similar = SimilarLists.of(neighbours)
    timed = (TimeSignals.of(inputs.time_counts, settings) if inputs.time_counts is not None
             else TimeSignals.none(len(customers), len(codes)))
    boost = 1.0 + settings.trending_boost * timed.trending
    ease = (ItemWeights.of(bought, settings.ease_items, settings.ease_lambda,
                           inputs.ease_training)
            if settings.ease_weight > 0 else ItemWeights.none(len(codes)))
    ease_kept = ease.kept(bought)
    rule_sets = cluster_rule_sets(rules, people["cluster"].to_numpy(), pd.Index(codes))

    clusters = people["cluster"].to_numpy()
    group_of, group_names = pd.factorize(
        people["value_tier"].astype(str) if "value_tier" in people
        else "cluster " + people["cluster"].astype(str))
    group_text = np.array([f"popular with {name} customers" for name in group_names], dtype=object)
    everyone = np.asarray(bought.sum(axis=0)).ravel()
    overall = everyone / max(everyone.max(initial=0), 1)
    describe = dict(zip(codes, descriptions, strict=True))
    rule_text = np.array([
        "often bought with " + " and ".join(str(describe.get(str(code), code)) for code in side)
        for side in rules["antecedents"]
    ], dtype=object)
    product_text = np.array([f"often bought with {name}" for name in descriptions], dtype=object)

    parts = []
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        popularity = popularity_scores(bought, ever, members, overall, settings.top_n)
        rule_set = rule_sets[int(cluster)]
        for start, stop in block_rows(len(members), len(codes)):
            block = members[start:stop]
            row, col, score, rule, trigger, named = recommend_block(
                block, bought, ever, neighbours, similar, popularity, rule_set, settings, timed,
                ease, ease_kept, boost)
            reasons = group_text[group_of[block[row]]]
            reasons[named == LIKE_YOU_PART] = LIKE_YOU
            reasons[named == TRENDING_PART] = TRENDING
            reasons[rule >= 0] = rule_text[rule[rule >= 0]]
            reasons[trigger >= 0] = product_text[trigger[trigger >= 0]]
            parts.append((block[row], col, score, reasons))
    if not parts:
        return empty_recommendations()
    row, col, score, reason = (np.concatenate(part) for part in zip(*parts, strict=True))
    if len(row) == 0:
        return empty_recommendations()
    order = np.lexsort((np.arange(len(row)), row))  # stable: each block is in rank order
    row, col, score, reason = row[order], col[order], score[order], reason[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row, side="left") + 1
    return pd.DataFrame({
        "customer_id": customers[row], "rank": rank.astype(int), "stock_code": codes[col],
        "description": descriptions[col], "score": score, "reason": reason,
    })[RECOMMENDATION_COLUMNS]


def ease_training(lines: pd.DataFrame, coded: CodedLines, row_of: np.ndarray,
                  shape: tuple[int, int], as_of: date | None,
                  settings: RecommendSettings) -> sparse.csr_matrix | None:
    """What EASE is fitted on: purchases weighted by the age of the latest (None: plain 0/1,
    when ease_half_life_days is 0 or the lines have no time)."""
    if settings.ease_half_life_days <= 0 or "ts" not in lines:
        return None
    ts = lines["ts"].to_numpy(dtype="datetime64[ns]")
    end = (np.datetime64(as_of, "ns") if as_of is not None
           else ts[coded.purchase].max().astype("datetime64[D]") + np.timedelta64(1, "D"))
    used = coded.purchase & (row_of >= 0) & (coded.product >= 0)
    return latest_weights(ts, used, row_of, coded.product, end, settings.ease_half_life_days,
                          shape)


RULE_PART, COOC_PART, LIKE_YOU_PART, TRENDING_PART, POPULARITY_PART, EASE_PART = range(6)
REASON_PREFERENCE = 2.0


def recommend_block(
    block: np.ndarray, bought: sparse.csr_matrix, ever: sparse.csr_matrix,
    neighbours: sparse.csr_matrix, similar: SimilarLists, popularity: np.ndarray,
    rule_set: RuleSet, settings: RecommendSettings, timed: TimeSignals, ease: ItemWeights,
    ease_kept: sparse.csr_matrix, boost: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Top-N of a block of one cluster's customers: (block row, product, score, the rule
    position when a rule is the reason else -1, the bought product when co-occurrence is the
    reason else -1, the part that gave most of the score: *_PART).

    Dense block arrays: co-occurrence, customers like you, the total and the selection's copy;
    the rule part is added only where a rule fires. ``boost``: per product, what the summed
    score is multiplied by (1 + trending_boost x trending); the reason is the largest part
    before it (the same factor for every part of a product)."""
    mine = bought[block]
    cooc = row_normalised((mine @ neighbours).toarray())
    rule_row, rule_col, rule_score, rule_pos = rule_set.best(mine)
    rule_w, cooc_w, pop_w = (settings.rule_weight, settings.cooccurrence_weight,
                             settings.popularity_weight)
    like_w, trend_w = settings.neighbour_weight, settings.trending_weight
    like = (timed.like_you(block, settings.neighbours) if like_w > 0
            else np.zeros_like(cooc))
    total = cooc_w * cooc
    total += like_w * like
    total += (pop_w * popularity + trend_w * timed.trending)[None, :]
    total[rule_row, rule_col] += rule_w * rule_score
    ease_w = settings.ease_weight
    mine_kept = ease_kept[block]
    learned = ease.scores(mine_kept)  # rows x kept items (none when ease_weight is 0)
    if learned.shape[1]:
        total[:, ease.items] += ease_w * learned
    total *= boost[None, :]
    owned = ever[block].tocoo()
    total[owned.row, owned.col] = 0.0
    row, col, score = top_in_block(total, settings.top_n)
    del total

    fired = rule_row.astype(np.int64) * cooc.shape[1] + rule_col  # ascending (best() sorts)
    chosen = row.astype(np.int64) * cooc.shape[1] + col
    parts = np.stack([
        rule_w * lookup(fired, rule_score, chosen, 0.0),
        cooc_w * cooc[row, col],
        like_w * like[row, col],
        trend_w * timed.trending[col],
        pop_w * popularity[col],
        ease_w * ease_at(learned, ease.position, row, col),
    ])
    # The reason is the part that gave most of the score, a product the customer bought (rule,
    # co-occurrence) counting double: "often bought with X" says more than "customers like you".
    parts[:COOC_PART + 1] *= REASON_PREFERENCE
    parts[EASE_PART] *= REASON_PREFERENCE
    named = np.argmax(parts, axis=0)  # ties to the earlier part
    rule = np.where(named == RULE_PART, lookup(fired, rule_pos.astype(np.int64), chosen, -1), -1)
    trigger = np.full(len(row), -1, dtype=np.int64)
    use_cooc = named == COOC_PART
    if use_cooc.any():
        trigger[use_cooc] = best_trigger(row[use_cooc], col[use_cooc], mine.toarray() > 0,
                                         similar)
    use_ease = named == EASE_PART
    if use_ease.any():
        trigger[use_ease] = ease.triggers(mine_kept, row[use_ease], col[use_ease])
    return row, col, score, rule, trigger, named


def ease_at(learned: np.ndarray, position: np.ndarray, row: np.ndarray,
            col: np.ndarray) -> np.ndarray:
    """The EASE part's score of each (block row, product) pair: 0 for a product not kept."""
    at = position[col]
    found = np.zeros(len(row))
    kept = at >= 0
    found[kept] = learned[row[kept], at[kept]]
    return found
