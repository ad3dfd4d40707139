"""K-means on log-scaled, standardised RFM features, automatic k, value tiers; pure functions.

Choosing k. Every k in [k_min, k_max] is fitted and scored by five criteria, each of which
nominates one k. Above ``silhouette_sample`` customers the fits and all five scores use one
deterministic sample of that many customers (below it, every customer): the choice of k costs
the same at 5,000 customers as at 500,000, and only the chosen k is fitted on everyone.

- elbow: the knee of the inertia curve (kneed, convex and decreasing);
- silhouette: the highest mean silhouette;
- gap statistic (Tibshirani 2001): the smallest k with gap(k) >= gap(k+1) - s(k+1), else the
  highest gap (uniform references in the data's bounding box, on the same sample);
- Calinski-Harabasz: the highest score;
- Davies-Bouldin: the lowest score.

The rule: the k with most nominations wins; a tie goes to the tied k with the best mean rank
over silhouette, Calinski-Harabasz and Davies-Bouldin (the three that score every k), then to the
smaller k. Every score, every nomination and the rule's outcome are returned for storage.

Value tiers. Clusters are ranked by a value score from their centroids (the mean of the
standardised log-frequency and log-monetary coordinates; recency is left out because a lapsed
big spender is still a high-value customer, the classes deal with recency and growth). The
ranking is cut into three tiers (high, mid, low) by Jenks natural breaks on the customers: of all
cuts into three non-empty runs, the one with the least within-tier variance of the value score,
each cluster weighted by its size. The tiers follow spend levels, not cluster counts: a small
cluster (new or lapsed customers, net returners) joins the tier nearest its value instead of
taking a tier of its own (k = 2: high and low). Clusters are then
renumbered in value order (0 = most valuable), so cluster numbers, tiers and classes do not
depend on the labels k-means happened to draw.

Randomness. The scoring of the k range (its k-means fits, the silhouette / gap sample, the gap
references) uses a fixed seed of its own (DIAGNOSTIC_SEED), so the choice of k does not move with
the run's seed; the final fit at the chosen k uses the run's seed.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from engine.errors import SegmintError
from engine.settings import ClusteringSettings
from engine.values import json_safe

SINGLE_THREAD_BELOW = 50_000
DIAGNOSTIC_SEED = 20240
CRITERIA = ("elbow", "silhouette", "gap", "calinski_harabasz", "davies_bouldin")


class ClusteringError(SegmintError):
    """Too few customers to cluster, or an impossible k."""


@dataclass(frozen=True)
class Clustering:
    """Labels per row (renumbered by value, 0 = best), the tier per cluster and the k scores."""

    labels: np.ndarray
    k: int
    tiers: dict[int, str]
    value_scores: dict[int, float]
    diagnostics: dict[str, Any] = field(default_factory=dict)


def feature_frame(rfm: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Raw feature columns per customer, before the log and the standardisation."""
    columns: dict[str, pd.Series] = {}
    for name in features:
        if name == "recency":
            columns[name] = rfm["recency_days"].astype(float)
        elif name == "frequency":
            columns[name] = rfm["frequency"].astype(float)
        elif name == "monetary":
            columns[name] = rfm["monetary"].astype(float)
        elif name == "tenure":
            columns[name] = rfm["tenure_days"].astype(float)
        elif name == "avg_order_value":
            columns[name] = rfm["monetary"].astype(float) / rfm["frequency"].clip(lower=1)
        else:
            raise ClusteringError(f"clustering.features: unknown feature {name!r}")
    return pd.DataFrame(columns, index=rfm.index)


def scale_features(raw: pd.DataFrame) -> np.ndarray:
    """log1p (negative net spend counts as 0), then zero mean and unit variance per column."""
    logged = np.log1p(raw.clip(lower=0).to_numpy(dtype=float))
    return StandardScaler().fit_transform(logged)


def _kmeans(matrix: np.ndarray, k: int, seed: int, n_init: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(matrix)


def _gap(sample: np.ndarray, ks: list[int], references: int, seed: int,
         n_init: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    low, high = sample.min(axis=0), sample.max(axis=0)
    reference_sets = [rng.uniform(low, high, size=sample.shape) for _ in range(references)]
    gaps, spreads = [], []
    for k in ks:
        observed = math.log(max(_kmeans(sample, k, seed, n_init).inertia_, 1e-12))
        ref_logs = np.array([math.log(max(_kmeans(ref, k, seed, 1).inertia_, 1e-12))
                             for ref in reference_sets])
        gaps.append(float(ref_logs.mean() - observed))
        spreads.append(float(ref_logs.std() * math.sqrt(1 + 1 / references)))
    return gaps, spreads


def _best(scores: pd.DataFrame, column: str, *, highest: bool) -> int:
    values = scores[column].to_numpy(dtype=float)
    if np.isnan(values).all():
        return int(scores["k"].iloc[0])
    position = np.nanargmax(values) if highest else np.nanargmin(values)
    return int(scores["k"].iloc[int(position)])


def knee_locator() -> type[Any]:
    """kneed's KneeLocator, imported without matplotlib when matplotlib is not loaded yet.

    kneed imports matplotlib.pyplot (in a try, for its plot methods only, which Segmint never
    calls): most of a second of CPU and tens of MiB per run. While kneed is imported,
    ``matplotlib`` is marked absent in sys.modules, so that import fails fast; the mark is
    removed at once and a later ``import matplotlib`` works as usual. Imported here, not at
    module level: kneed also loads scipy.signal, which only the choice of k needs.
    """
    if "kneed" in sys.modules or "matplotlib" in sys.modules:
        from kneed import KneeLocator

        return KneeLocator
    sys.modules["matplotlib"] = None  # type: ignore[assignment]
    try:
        from kneed import KneeLocator
    finally:
        del sys.modules["matplotlib"]
    return KneeLocator


def _nominations(scores: pd.DataFrame) -> dict[str, int | None]:
    ks = [int(k) for k in scores["k"]]
    picks: dict[str, int | None] = {}
    elbow = None
    if len(ks) >= 3:
        knee = knee_locator()(ks, scores["inertia"].tolist(), curve="convex",
                              direction="decreasing").knee
        elbow = int(knee) if knee is not None else None
    picks["elbow"] = elbow
    picks["silhouette"] = _best(scores, "silhouette", highest=True)
    gap, spread = scores["gap"].to_numpy(), scores["gap_sd"].to_numpy()
    tibshirani = [ks[i] for i in range(len(ks) - 1) if gap[i] >= gap[i + 1] - spread[i + 1]]
    picks["gap"] = tibshirani[0] if tibshirani else _best(scores, "gap", highest=True)
    picks["calinski_harabasz"] = _best(scores, "calinski_harabasz", highest=True)
    picks["davies_bouldin"] = _best(scores, "davies_bouldin", highest=False)
    return picks


def combine_nominations(scores: pd.DataFrame, picks: dict[str, int | None]) -> int:
    """Most nominations; ties by mean rank over silhouette, CH and DB; then the smaller k."""
    votes = Counter(k for k in picks.values() if k is not None)
    best = max(votes.values())
    tied = sorted(k for k, count in votes.items() if count == best)
    ranks = pd.DataFrame({
        "k": scores["k"],
        "silhouette": scores["silhouette"].rank(ascending=False),
        "calinski_harabasz": scores["calinski_harabasz"].rank(ascending=False),
        "davies_bouldin": scores["davies_bouldin"].rank(ascending=True),
    }).set_index("k")
    mean_rank = ranks.mean(axis=1)
    return int(min(tied, key=lambda k: (mean_rank.get(k, math.inf), k)))


def silhouettes(matrix: np.ndarray, labelings: Sequence[np.ndarray],
                chunk: int = 512) -> list[float]:
    """Mean silhouette of each labelling of the same rows, from ONE pass over the pairwise
    distances (sklearn's silhouette_score recomputes them for every k; this is the same
    formula, checked against it in the tests). NaN for a labelling with a single cluster."""
    n = len(matrix)
    blocks, offsets, sizes = [], [0], []
    for labels in labelings:
        codes = np.unique(labels, return_inverse=True)[1]
        width = int(codes.max()) + 1
        block = np.zeros((n, width))
        block[np.arange(n), codes] = 1.0
        blocks.append(block)
        offsets.append(offsets[-1] + width)
        sizes.append(block.sum(axis=0))
    one_hot = np.hstack(blocks)
    totals = [np.zeros(n) for _ in labelings]
    squared = (matrix ** 2).sum(axis=1)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        distances = np.sqrt(np.clip(squared[rows, None] + squared[None, :]
                                    - 2 * matrix[rows] @ matrix.T, 0, None))
        sums = distances @ one_hot
        for index, block in enumerate(blocks):
            part = sums[:, offsets[index]:offsets[index + 1]]
            own = block[rows].astype(bool)
            size = sizes[index]
            own_size = size[own.argmax(axis=1)]
            a = part[own] / np.maximum(own_size - 1, 1)
            others = np.where(own, np.inf, part / size)
            b = others.min(axis=1)
            score = (b - a) / np.maximum(np.maximum(a, b), 1e-300)
            totals[index][rows] = np.where(own_size > 1, score, 0.0)
    return [float(total.mean()) if block.shape[1] > 1 else float("nan")
            for total, block in zip(totals, blocks, strict=True)]


def diagnostic_sample(matrix: np.ndarray, size: int) -> np.ndarray:
    """The rows the k range is scored on: all of them up to ``size``, else ``size`` rows drawn
    with DIAGNOSTIC_SEED (in row order), so the same customers give the same sample."""
    if len(matrix) <= size:
        return matrix
    rng = np.random.default_rng(DIAGNOSTIC_SEED)
    return matrix[np.sort(rng.choice(len(matrix), size, replace=False))]


def score_k_range(matrix: np.ndarray, ks: list[int],
                  settings: ClusteringSettings) -> pd.DataFrame:
    """Fits every k on the diagnostic sample (``silhouette_sample`` rows; all rows below it) and
    returns one row of scores per k, all computed on that sample. Everything here uses
    DIAGNOSTIC_SEED (the sample, the fits, the gap references), so the scores do not move with
    the run's seed."""
    sample = diagnostic_sample(matrix, settings.silhouette_sample)
    gaps, spreads = _gap(sample, ks, settings.gap_references, DIAGNOSTIC_SEED,
                         max(1, min(settings.n_init, 3)))
    models = {k: _kmeans(sample, k, DIAGNOSTIC_SEED, settings.n_init) for k in ks}
    silhouette = silhouettes(sample, [models[k].labels_ for k in ks])
    rows = []
    for k, gap, spread, sil in zip(ks, gaps, spreads, silhouette, strict=True):
        labels = models[k].labels_
        several = len(np.unique(labels)) > 1
        rows.append({
            "k": k,
            "inertia": float(models[k].inertia_),
            "silhouette": sil,
            "gap": gap,
            "gap_sd": spread,
            "calinski_harabasz": (float(calinski_harabasz_score(sample, labels))
                                  if several else float("nan")),
            "davies_bouldin": (float(davies_bouldin_score(sample, labels))
                               if several else float("nan")),
        })
    return pd.DataFrame(rows)


def _weighted_sse(values: np.ndarray, weights: np.ndarray) -> float:
    mean = float(np.average(values, weights=weights))
    return float((weights * (values - mean) ** 2).sum())


def value_tiers(centroids: np.ndarray, feature_names: Sequence[str], sizes: dict[int, int],
                tier_names: Sequence[str]) -> tuple[list[int], dict[int, str], dict[int, float]]:
    """Ranks the clusters by centroid value and cuts the ranking into three tiers (high, mid,
    low): of all ways to cut it into three non-empty runs, the one with the least within-tier
    variance of the value score, each cluster weighted by its size (Jenks natural breaks on the
    customers). ``sizes`` maps each label present to its number of customers.

    Returns the labels best first, the tier per label and the value score per label.
    """
    value_columns = [i for i, name in enumerate(feature_names) if name in ("frequency", "monetary")]
    if not value_columns:
        value_columns = list(range(len(feature_names)))
    present = sorted(sizes)
    value = {label: float(centroids[label, value_columns].mean()) for label in present}
    # Ties (identical centroids) fall back to the raw centroid coordinates, then the label.
    order = sorted(present, key=lambda label: (-value[label], tuple(-centroids[label]), label))
    high, mid, low = tier_names
    if len(order) <= 2:
        return order, dict(zip(order, [high, low][:len(order)], strict=True)), value
    values = np.array([value[label] for label in order])
    weights = np.array([sizes[label] for label in order], dtype=float)
    best: tuple[float, int, int] | None = None
    for first in range(1, len(order) - 1):  # tiers are order[:first], [first:second], [second:]
        for second in range(first + 1, len(order)):
            cost = sum(_weighted_sse(values[part], weights[part]) for part in
                       (slice(0, first), slice(first, second), slice(second, None)))
            if best is None or cost < best[0] - 1e-12:
                best = (cost, first, second)
    assert best is not None
    _, first, second = best
    tiers = {label: high if position < first else mid if position < second else low
             for position, label in enumerate(order)}
    return order, tiers, value


def cluster_customers(rfm: pd.DataFrame, settings: ClusteringSettings, *,
                      k: int | Literal["auto"] | None = None,
                      seed: int | None = None) -> Clustering:
    """Clusters the customers of an RFM table; k None means settings.k ("auto" or a number)."""
    seed = settings.seed if seed is None else seed
    requested = settings.k if k is None else k
    forced = None if requested == "auto" else int(requested)
    n = len(rfm)
    if forced is not None and forced >= n:
        raise ClusteringError(f"k = {forced} needs more than {forced} customers; "
                              f"the window has {n}")
    ks = [candidate for candidate in range(settings.k_min, settings.k_max + 1) if candidate < n]
    if forced is None and not ks:
        raise ClusteringError(f"automatic k needs more than {settings.k_min} customers; "
                              f"the window has {n}")
    if forced is not None and forced not in ks:
        ks = sorted([*ks, forced])
    features = list(settings.features)
    matrix = scale_features(feature_frame(rfm, features))
    # A few thousand rows of a few columns: OpenMP threads cost more than they save (and
    # oversubscribe a shared machine), so such fits run single-threaded, in these blocks only.
    scored_rows = min(n, settings.silhouette_sample)
    with threadpool_limits(limits=1 if scored_rows < SINGLE_THREAD_BELOW else None):
        scores = score_k_range(matrix, ks, settings)
    picks = _nominations(scores)
    chosen = forced if forced is not None else combine_nominations(scores, picks)
    with threadpool_limits(limits=1 if n < SINGLE_THREAD_BELOW else None):
        model = _kmeans(matrix, chosen, seed, settings.n_init)
    labels_present, counts = np.unique(model.labels_, return_counts=True)
    sizes = {int(label): int(count) for label, count in zip(labels_present, counts, strict=True)}
    order, old_tiers, old_values = value_tiers(model.cluster_centers_, features, sizes,
                                               settings.tiers)
    relabel = {old: new for new, old in enumerate(order)}
    lookup = np.zeros(int(model.labels_.max()) + 1, dtype=np.int64)
    for old_label, new_label in relabel.items():
        lookup[old_label] = new_label
    labels = lookup[model.labels_]
    diagnostics = {
        "k_mode": "fixed" if forced is not None else "auto",
        "chosen_k": chosen,
        "features": features,
        "rule": "most nominations; tie -> best mean rank (silhouette, CH, DB); then smaller k",
        "nominations": picks,
        "scores": scores.to_dict(orient="list"),
        "silhouette_sampled": n > settings.silhouette_sample,
        "silhouette_sample": settings.silhouette_sample,
        "scored_customers": scored_rows,
        "gap_references": settings.gap_references,
        "seed": seed,
        "n_init": settings.n_init,
        "centroids_scaled": {relabel[old]: model.cluster_centers_[old].tolist() for old in order},
    }
    return Clustering(
        labels=labels,
        k=len(order),
        tiers={relabel[old]: tier for old, tier in old_tiers.items()},
        value_scores={relabel[old]: old_values[old] for old in order},
        diagnostics=json_safe(diagnostics),
    )
