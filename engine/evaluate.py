"""Recommendation quality on a time split, against popularity and the `implicit` library.

Train: the real segmentation run (RFM, clusters, classes, rules, recommendations) on the lines
before the cutoff. Test: the products each customer bought on or after the cutoff that they had
not bought (or returned) before it. Only customers of the training run with at least one such
product are scored, and both recommenders are scored on exactly those customers:
- hit-rate@k: share of customers with at least one test product among their top k;
- precision@k: test products among the top k, divided by k (a short list is not rewarded);
- recall@k: test products among the top k, divided by the customer's number of test products.
Baselines, each trained on exactly the lines Segmint's training run sees (every line before the
cutoff) and scored on the same customers:
- popularity: the products most customers bought in the training window (ties by stock code),
  leaving out what each customer already bought;
- implicit's ALS (64 factors, 20 iterations, the evaluation's seed, CPU) and BM25 item-kNN
  (`implicit.nearest_neighbours.BM25Recommender`), both fitted on the customers x products matrix
  (implicit 0.7: users are rows) of the number of distinct invoices in which the customer bought
  the product, and asked for k products with `filter_already_liked_items=True` (the customer's own
  row), so neither recommends what the customer already bought.
Segmint against each baseline (`versus`): the hit-rate ratio and the differences of the three
metrics, each with a 95% interval from a paired bootstrap over the evaluated customers
(`scipy.stats.bootstrap`, paired=True, percentile method, `evaluate.resamples` resamples, the
evaluation's seed): a customer is drawn with both recommenders' outcomes, so the interval is that
of the comparison on these customers, not of two independent figures.
implicit (and its OpenBLAS threads) is imported here only when an evaluation runs.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy import sparse

from engine.baskets import purchase_lines
from engine.errors import SegmintError
from engine.rfm import require_columns
from engine.settings import Settings
from engine.values import plain

log = logging.getLogger(__name__)

SEGMINT = "Segmint"
BASELINE = "Popularity baseline"
ALS = "implicit ALS"
BM25 = "implicit BM25 item-kNN"
ALS_FACTORS = 64
ALS_ITERATIONS = 20
BM25_NEIGHBOURS = 100
# resamples x customers per bootstrap batch: about 100 MiB held (the drawn indices and both
# recommenders' resampled outcomes)
BOOTSTRAP_CELLS = 1 << 22
METRIC_COLUMNS = ["hit_rate", "precision", "recall"]
CONFIDENCE = 0.95
RATIO = "hit_rate_ratio"
VERSUS_FIGURES = [RATIO, *(f"{metric}_difference" for metric in METRIC_COLUMNS)]
VERSUS_COLUMNS = [f"{figure}{end}" for figure in VERSUS_FIGURES for end in ("", "_low", "_high")]


class EvaluationError(SegmintError):
    """The lines cannot be split into a training and a test window."""


@dataclass(frozen=True)
class EvaluationResult:
    cutoff: date
    k: int
    n_customers: int
    n_train_customers: int
    metrics: pd.DataFrame  # index: recommender; columns: METRIC_COLUMNS
    versus: pd.DataFrame  # index: every other recommender; columns: VERSUS_COLUMNS (paired_versus)
    resamples: int

    def table(self) -> str:
        width = max(len(name) for name in self.metrics.index)
        head = [f"{'recommender':<{width}}"] + [f"{f'{m}@{self.k}':>14}" for m in METRIC_COLUMNS]
        rows = ["  ".join(head)]
        for name, values in self.metrics.iterrows():
            cells = [f"{name:<{width}}"] + [f"{values[m]:>14.4f}" for m in METRIC_COLUMNS]
            rows.append("  ".join(cells))
        return "\n".join(rows)

    def versus_table(self) -> str:
        """Segmint against each baseline, with the bootstrap's 95% intervals ("" without)."""
        if self.versus.empty:
            return ""
        width = max(len(name) for name in self.versus.index)
        titles = [f"hit-rate@{self.k} ratio"] + [
            f"{m.replace('_', '-')}@{self.k} difference" for m in METRIC_COLUMNS]
        cells = [[_with_interval(values, figure) for figure in VERSUS_FIGURES]
                 for _, values in self.versus.iterrows()]
        widths = [max(len(title), *(len(row[i]) for row in cells))
                  for i, title in enumerate(titles)]
        how = (f" ({CONFIDENCE:.0%} intervals: paired bootstrap, {self.resamples:,} resamples)"
               if self.resamples > 0 and self.n_customers > 1 else "")
        rows = [f"{SEGMINT} against each baseline on the same {self.n_customers:,} customers{how}",
                "  ".join([f"{'baseline':<{width}}"]
                          + [f"{t:<{w}}" for t, w in zip(titles, widths, strict=True)]).rstrip()]
        for name, row in zip(self.versus.index, cells, strict=True):
            rows.append("  ".join([f"{name:<{width}}"]
                                  + [f"{c:<{w}}" for c, w in zip(row, widths, strict=True)]
                                  ).rstrip())
        return "\n".join(rows)

    def as_dict(self) -> dict[str, object]:
        """JSON-safe: cutoff as ISO text, metrics per recommender, Segmint against each
        baseline (None where a figure is undefined)."""
        return {
            "cutoff": self.cutoff.isoformat(), "k": self.k, "n_customers": self.n_customers,
            "n_train_customers": self.n_train_customers,
            "metrics": {str(name): {m: float(values[m]) for m in METRIC_COLUMNS}
                        for name, values in self.metrics.iterrows()},
            "resamples": self.resamples, "confidence": CONFIDENCE,
            "versus": {str(name): {c: plain(values[c]) for c in VERSUS_COLUMNS}
                       for name, values in self.versus.iterrows()},
        }


def _with_interval(values: pd.Series, figure: str) -> str:
    """"1.057 (1.021 to 1.094)" for the ratio, "+0.0297 (+0.0111 to +0.0480)" for a
    difference; "n/a" where undefined, no interval when none was drawn; an end that is not a
    number (a ratio over resamples where the baseline never hits) as "inf" or "n/a"."""
    spec = ".3f" if figure == RATIO else "+.4f"
    point, low, high = (values[f"{figure}{end}"] for end in ("", "_low", "_high"))
    if not np.isfinite(point):
        return "n/a"
    if np.isnan(low) and np.isnan(high):
        return f"{point:{spec}}"
    ends = ["n/a" if np.isnan(end) else f"{end:{spec}}" for end in (low, high)]
    return f"{point:{spec}} ({ends[0]} to {ends[1]})"


def default_cutoff(lines: pd.DataFrame) -> date:
    """The day 80% of the way from the first to the last transaction."""
    first, last = lines["ts"].min(), lines["ts"].max()
    if pd.isna(first):
        raise EvaluationError("no transaction lines to evaluate on")
    return (first + (last - first) * 0.8).date()


def _pairs(frame: pd.DataFrame) -> pd.DataFrame:
    known = frame.loc[frame["customer_id"].notna() & frame["stock_code"].notna()]
    return pd.DataFrame({
        "customer_id": known["customer_id"].astype(str),
        "stock_code": known["stock_code"].astype(str),
    }).drop_duplicates()


def new_products_after(lines: pd.DataFrame, cutoff: date, customers: pd.Index,
                  non_product_codes: list[str]) -> pd.DataFrame:
    """(customer_id, stock_code) bought on or after the cutoff and never touched before it."""
    start = pd.Timestamp(cutoff)
    before = _pairs(lines.loc[lines["ts"] < start])
    after = _pairs(purchase_lines(lines.loc[lines["ts"] >= start], non_product_codes))
    after = after.loc[after["customer_id"].isin(customers)]
    seen = after.merge(before, how="left", indicator=True)["_merge"].eq("both").to_numpy()
    return after.loc[~seen].reset_index(drop=True)


def popularity_baseline(train: pd.DataFrame, customers: pd.Index, k: int,
                        non_product_codes: list[str]) -> pd.DataFrame:
    """Top k products by number of training customers, minus each customer's own products."""
    bought = _pairs(purchase_lines(train, non_product_codes))
    counts = bought.groupby("stock_code").size().rename("n").reset_index()
    order = counts.sort_values(["n", "stock_code"], ascending=[False, True])["stock_code"]
    ranked = order.to_numpy(dtype=object)
    touched = _pairs(train)
    touched = touched.loc[touched["customer_id"].isin(customers)]
    rows = customers.get_indexer(pd.Index(touched["customer_id"]))
    cols = pd.Index(ranked).get_indexer(pd.Index(touched["stock_code"]))
    keep = cols >= 0
    seen = sparse.csr_matrix((np.ones(int(keep.sum()), dtype=bool), (rows[keep], cols[keep])),
                             shape=(len(customers), len(ranked)))
    width = min(len(ranked), 2 * k)
    while width < len(ranked):
        already = np.asarray(seen[:, :width].sum(axis=1)).ravel()
        if (width - already).min(initial=k) >= k:
            break
        width = min(len(ranked), width * 2)
    fresh = ~seen[:, :width].toarray()
    chosen = fresh & (np.cumsum(fresh, axis=1) <= k)
    row, col = np.nonzero(chosen)
    return pd.DataFrame({"customer_id": customers.to_numpy()[row], "stock_code": ranked[col]})


def purchase_matrix(train: pd.DataFrame, customers: pd.Index,
                    non_product_codes: list[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """(customers x products CSR of distinct purchase invoices per pair, the products' codes):
    implicit 0.7's `user_items` orientation (users are rows)."""
    bought = purchase_lines(train, non_product_codes)
    bought = bought.loc[bought["customer_id"].notna() & bought["stock_code"].notna()]
    pairs = pd.DataFrame({
        "customer_id": bought["customer_id"].astype(str),
        "stock_code": bought["stock_code"].astype(str),
        "invoice": bought["invoice"].astype(str),
    }).drop_duplicates()
    products = np.sort(pairs["stock_code"].unique())
    rows = customers.get_indexer(pd.Index(pairs["customer_id"]))
    cols = pd.Index(products).get_indexer(pd.Index(pairs["stock_code"]))
    keep = rows >= 0
    matrix = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
        shape=(len(customers), len(products)))
    matrix.sum_duplicates()
    return matrix, products.astype(object)


def implicit_baselines(train: pd.DataFrame, trained: pd.Index, evaluated: pd.Index, k: int,
                       non_product_codes: list[str], *, seed: int,
                       threads: int) -> dict[str, pd.DataFrame]:
    """implicit's ALS and BM25 item-kNN top k for the `evaluated` customers, fitted on every
    `trained` customer's purchases; already-bought products filtered by implicit itself."""
    # Heavy imports: only when an evaluation runs, never when the CLI starts. Imported before
    # the BLAS limit below, so the BLAS libraries they load are limited too.
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import BM25Recommender
    from threadpoolctl import threadpool_limits

    matrix, products = purchase_matrix(train, trained, non_product_codes)
    rows = trained.get_indexer(evaluated)
    rows = rows[rows >= 0]
    # implicit runs its own threads: BLAS must not start a pool per thread as well
    # (implicit warns about OpenBLAS oversubscription otherwise).
    with threadpool_limits(limits=1, user_api="blas"):
        als = AlternatingLeastSquares(factors=ALS_FACTORS, iterations=ALS_ITERATIONS,
                                      random_state=seed, num_threads=threads, use_gpu=False)
        bm25 = BM25Recommender(K=BM25_NEIGHBOURS, num_threads=threads)
        found = {}
        for name, model in ((ALS, als), (BM25, bm25)):
            with warnings.catch_warnings():
                # BM25Recommender.fit hands its own BM25-weighted COO matrix on to the item-item
                # fit, which converts it and says so: not something the caller can change.
                warnings.filterwarnings("ignore", message="Method expects CSR input")
                model.fit(matrix, show_progress=False)
            ids, scores = model.recommend(rows, matrix[rows], N=k,
                                          filter_already_liked_items=True)
            found[name] = _top_frame(trained.to_numpy()[rows], products, ids, scores)
    return found


def _top_frame(customers: np.ndarray, products: np.ndarray, ids: np.ndarray,
               scores: np.ndarray) -> pd.DataFrame:
    """implicit's (ids, scores) arrays as (customer_id, stock_code) rows; the padding implicit
    puts where fewer than N products remain (id -1 or score -inf) left out."""
    ids, scores = np.atleast_2d(ids), np.atleast_2d(scores)
    real = (ids >= 0) & np.isfinite(scores)
    row, col = np.nonzero(real)
    return pd.DataFrame({"customer_id": customers[row], "stock_code": products[ids[row, col]]})


def per_customer(recommended: pd.DataFrame, truth: pd.DataFrame, customers: pd.Index,
                 k: int) -> pd.DataFrame:
    """Each customer's hit (0/1), precision and recall at k: rows `customers`, columns
    METRIC_COLUMNS (`recommended`: the top k rows of each customer)."""
    top = recommended[["customer_id", "stock_code"]].astype(str)
    found = top.merge(truth, on=["customer_id", "stock_code"]).groupby("customer_id").size()
    hits = found.reindex(customers, fill_value=0).to_numpy(dtype=float)
    relevant = truth.groupby("customer_id").size().reindex(customers).to_numpy(dtype=float)
    return pd.DataFrame({"hit_rate": (hits > 0).astype(float), "precision": hits / k,
                         "recall": hits / relevant}, index=customers)[METRIC_COLUMNS]


def score(recommended: pd.DataFrame, truth: pd.DataFrame, customers: pd.Index,
          k: int) -> dict[str, float]:
    """hit-rate, precision and recall at k, averaged over `customers`."""
    return averages(per_customer(recommended, truth, customers, k))


def averages(each: pd.DataFrame) -> dict[str, float]:
    """The mean of each of per_customer's figures (0 for no customers)."""
    if each.empty:
        return dict.fromkeys(METRIC_COLUMNS, 0.0)
    return {metric: float(each[metric].mean()) for metric in METRIC_COLUMNS}


def paired_versus(ours: pd.DataFrame, others: dict[str, pd.DataFrame], *, resamples: int,
                  seed: int) -> pd.DataFrame:
    """Ours against each of `others` on the same customers (per_customer frames, same rows):
    the hit-rate ratio and each metric's difference (ours minus theirs), each with the
    CONFIDENCE interval of a paired percentile bootstrap over the customers (NaN when
    `resamples` is 0, with fewer than two customers, or for a ratio over a hit-rate of 0; a
    ratio's end is inf, or NaN, when the baseline hits nobody in enough resamples). Every
    figure is drawn with the same seed, so all use the same resamples."""
    from scipy.stats import DegenerateDataWarning, bootstrap

    def ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample's baseline hits 0
            return np.asarray(np.mean(a, axis=axis) / np.mean(b, axis=axis))

    def difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.mean(a, axis=axis) - np.mean(b, axis=axis))

    pairs = [(RATIO, "hit_rate", ratio)] + [
        (f"{metric}_difference", metric, difference) for metric in METRIC_COLUMNS]
    rows = {}
    for name, theirs in others.items():
        found: dict[str, float] = {}
        for figure, metric, statistic in pairs:
            a = ours[metric].to_numpy(dtype=float)
            b = theirs[metric].to_numpy(dtype=float)
            defined = len(a) > 0 and not (statistic is ratio and b.sum() == 0)
            point = float(statistic(a, b)) if defined else np.nan
            low = high = np.nan
            if defined and resamples > 0 and len(a) > 1:
                # scipy warns when an end comes out NaN (a ratio where the baseline hits nobody
                # in some resamples, divided 0 by 0): the end is left NaN and shown as such.
                # (numpy's own warnings on such infinite resamples, in scipy's standard
                # error, are silenced the same way.)
                with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
                    warnings.simplefilter("ignore", DegenerateDataWarning)
                    interval = bootstrap(
                        (a, b), statistic, paired=True, vectorized=True, n_resamples=resamples,
                        batch=max(1, BOOTSTRAP_CELLS // len(a)), confidence_level=CONFIDENCE,
                        method="percentile", rng=np.random.default_rng(seed),
                    ).confidence_interval
                low, high = float(interval.low), float(interval.high)
            found.update({figure: point, f"{figure}_low": low, f"{figure}_high": high})
        rows[name] = found
    return pd.DataFrame.from_dict(rows, orient="index", columns=VERSUS_COLUMNS)


def evaluate(lines: pd.DataFrame, customers: pd.DataFrame | None, settings: Settings,
             cutoff: date, *, baselines: bool = True, progress: bool = False) -> EvaluationResult:
    """Train the engine before `cutoff`, test every recommender on what came after
    (`baselines=False`: Segmint and popularity only, without implicit; `progress`: the training
    run's stages logged at INFO, as `segmint run` does). The training run fits no CLV: nothing
    it scores reads it, and on the real data it doubled the time (docs/benchmarks.md)."""
    from engine.pipeline import segment

    require_columns(lines, ("invoice", "stock_code", "customer_id", "is_return", "ts"), "lines")
    k = settings.evaluate.k
    codes = list(settings.ingest.non_product_codes)
    start = pd.Timestamp(cutoff)
    train = lines.loc[lines["ts"] < start]
    if train.empty or not (lines["ts"] >= start).any():
        raise EvaluationError(
            f"cutoff {cutoff} leaves no lines on one side (data runs from "
            f"{lines['ts'].min():%Y-%m-%d} to {lines['ts'].max():%Y-%m-%d})")
    if lines["stock_code"].isna().all():
        raise EvaluationError("the lines have no stock codes: nothing to recommend or evaluate")
    at_k = settings.model_copy(update={
        "recommend": settings.recommend.model_copy(update={"top_n": k}),
        "clv": settings.clv.model_copy(update={"enabled": False}),
    })
    run = segment(lines, customers, at_k, as_of=cutoff, progress=progress)
    trained = pd.Index(np.sort(run.segments["customer_id"].astype(str).unique()))
    truth = new_products_after(lines, cutoff, trained, codes)
    evaluated = pd.Index(np.sort(truth["customer_id"].unique()))
    log.info("cutoff %s: %d training customers, %d with new products after it",
             cutoff, len(trained), len(evaluated))
    recommendations = run.recommendations
    if recommendations is None:
        raise EvaluationError("the training run produced no recommendations")
    ours = recommendations.loc[recommendations["rank"] <= k]
    found = {SEGMINT: ours, BASELINE: popularity_baseline(train, evaluated, k, codes)}
    if baselines:
        log.info("fitting implicit's ALS and BM25 item-kNN on the %d training customers",
                 len(trained))
        found.update(implicit_baselines(train, trained, evaluated, k, codes,
                                        seed=settings.evaluate.seed,
                                        threads=settings.evaluate.threads))
    each = {name: per_customer(top, truth, evaluated, k) for name, top in found.items()}
    metrics = pd.DataFrame([averages(frame) for frame in each.values()],
                           index=list(each))[METRIC_COLUMNS]
    resamples = settings.evaluate.resamples
    versus = paired_versus(each.pop(SEGMINT), each, resamples=resamples,
                           seed=settings.evaluate.seed)
    return EvaluationResult(cutoff=cutoff, k=k, n_customers=len(evaluated),
                            n_train_customers=len(trained), metrics=metrics, versus=versus,
                            resamples=resamples)
