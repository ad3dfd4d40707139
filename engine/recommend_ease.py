"""The "bought with what you bought" part of engine/recommend.py: EASE (Steck 2019,
"Embarrassingly Shallow Autoencoders for Sparse Data"), item-item weights in closed form.

X is the customers x products purchase matrix, each customer's latest purchase of a product
weighted 0.5 ** (its age in days / `ease_half_life_days`), so last year's baskets teach less than
last month's (all 1 when the half-life is 0 or the lines have no time), restricted to the
`ease_items` products the most customers bought: G = X^T X + lambda I, P = G^-1,
B = I - P / diag(P) (column-wise), so B's diagonal is 0 and each product is predicted from the
others only. A customer's score of product j is sum_i Y_ui B_ij, Y the 0/1 matrix of the
customer's purchases (on the real data weighting Y by age as well scored worse); negative
scores count as 0, and each customer's scores are divided by their largest. The reason names
the customer's product i with the largest B_ij ("often bought with i").

The cost is one dense inverse of an items x items matrix (about items^3, 0.2 s at 1,000 items,
0.8 s at 2,000 on one core) and a sparse x dense product per block of customers (each bought
product adds one row of B): it does not grow with customers squared, and `ease_items` bounds it
however many products there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from engine.recommend_signals import row_normalised


@dataclass(frozen=True)
class ItemWeights:
    """EASE's item-item weights over the kept products."""

    items: np.ndarray  # product indices kept, ascending
    position: np.ndarray  # per product: its row in `weights`, -1 when not kept
    weights: np.ndarray  # items x items, float32, diagonal 0

    @classmethod
    def none(cls, n_products: int) -> ItemWeights:
        return cls(np.zeros(0, dtype=np.int64), np.full(n_products, -1, dtype=np.int64),
                   np.zeros((0, 0), dtype=np.float32))

    @classmethod
    def of(cls, bought: sparse.csr_matrix, n_items: int, regularisation: float,
           training: sparse.csr_matrix | None = None) -> ItemWeights:
        """``bought``: customers x products, 0/1. The `n_items` products most customers bought
        (ties to the lower index; products nobody bought are never kept). ``training`` (default
        ``bought``): the customers x products matrix the weights are fitted on
        (`latest_weights`)."""
        n_products = bought.shape[1]
        buyers = np.asarray(bought.sum(axis=0)).ravel()
        ranked = np.lexsort((np.arange(n_products), -buyers))
        items = np.sort(ranked[:n_items][buyers[ranked[:n_items]] > 0])
        if len(items) < 2:
            return cls.none(n_products)
        kept = (bought if training is None else training)[:, items].tocsc()
        gram = (kept.T @ kept).toarray()
        gram[np.diag_indices_from(gram)] += regularisation
        inverse = np.linalg.inv(gram)
        weights = inverse / -np.diag(inverse)[None, :]
        np.fill_diagonal(weights, 0.0)
        position = np.full(n_products, -1, dtype=np.int64)
        position[items] = np.arange(len(items))
        return cls(items, position, weights.astype(np.float32))

    def kept(self, bought: sparse.csr_matrix) -> sparse.csr_matrix:
        """rows x kept items of a rows x products 0/1 matrix (float32, sorted indices): made once
        for every customer, sliced per block."""
        kept = bought[:, self.items].astype(np.float32).tocsr()
        kept.sort_indices()
        return kept

    def scores(self, mine: sparse.csr_matrix) -> np.ndarray:
        """Dense rows x kept items: each row's EASE score (0 where negative), row-normalised.
        ``mine``: rows x kept items, 0/1 (`kept`)."""
        if len(self.items) == 0:
            return np.zeros((mine.shape[0], 0), dtype=np.float32)
        found = np.asarray(mine @ self.weights)
        np.maximum(found, 0.0, out=found)
        return row_normalised(found)

    def triggers(self, mine: sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """For each (row, product) pair (the product kept), the row's bought product with the
        largest weight towards it (ties to the lower index), -1 when the row has none with a
        positive weight. ``mine``: rows x kept items (`kept`); only each row's own products are
        looked at."""
        counts = np.diff(mine.indptr)[rows]
        found = np.full(len(rows), -1, dtype=np.int64)
        if counts.sum() == 0:
            return found
        pair = np.repeat(np.arange(len(rows)), counts)
        offsets = np.arange(len(pair)) - np.repeat(np.cumsum(counts) - counts, counts)
        item = mine.indices[np.repeat(mine.indptr[rows], counts) + offsets]  # ascending per pair
        weight = self.weights[item, self.position[cols][pair]]
        new = np.r_[True, pair[1:] != pair[:-1]]
        best = np.maximum.reduceat(weight, np.flatnonzero(new))[np.cumsum(new) - 1]
        top = np.flatnonzero((weight == best) & (weight > 0))  # ascending: lower index first
        top = top[np.r_[True, pair[top][1:] != pair[top][:-1]]] if len(top) else top
        found[pair[top]] = self.items[item[top]]
        return found


def latest_weights(ts: np.ndarray, used: np.ndarray, rows: np.ndarray, products: np.ndarray,
                   end: np.datetime64, half_life_days: float,
                   shape: tuple[int, int]) -> sparse.csr_matrix:
    """rows x products: 0.5 ** (age in days / half_life_days) of the row's latest purchase of
    the product on the ``used`` lines (age counted back from ``end``; 1 at ``end``, never above
    1), so EASE learns most from what goes together now."""
    age = (end - ts[used]).astype("timedelta64[s]").astype(np.float64) / 86400.0
    weight = np.exp2(-np.maximum(age, 0.0) / half_life_days)
    key = rows[used].astype(np.int64) * shape[1] + products[used]
    order = np.argsort(key, kind="stable")
    key, weight = key[order], weight[order]
    if len(key) == 0:
        return sparse.csr_matrix(shape, dtype=np.float64)
    new = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    latest = np.maximum.reduceat(weight, new)
    row, col = np.divmod(key[new], shape[1])
    return sparse.csr_matrix((latest, (row, col)), shape=shape)
