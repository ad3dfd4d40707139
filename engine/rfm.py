"""RFM per customer, quantile scores and the two named-segment schemes; pure functions.

Definitions (SPEC, "Data and its definitions"), for the lines of a window and an ``as_of`` date:

- only lines with a customer id and a product stock code count (non-product codes such as
  postage and discounts are left out);
- ``recency_days``: calendar days from the customer's last purchase date to ``as_of``;
- ``frequency``: distinct purchase invoices (returns are not purchases);
- ``monetary``: purchase value minus returned value (net, may be <= 0).

The table has one row per customer with at least one purchase in the window. A customer whose
window holds only returns has no purchase, so no recency and no frequency: it is left out (its
returns belong to purchases made before the window).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from engine.errors import SegmintError
from engine.settings import GridSegment, RfmSettings, ScoreSegment

if TYPE_CHECKING:
    from pandas.core.groupby import SeriesGroupBy

Reduced = TypeVar("Reduced", pd.Series, pd.DataFrame)

RFM_COLUMNS = ["customer_id", "recency_days", "frequency", "monetary", "first_purchase",
               "tenure_days"]
SCORE_COLUMNS = ["r_score", "f_score", "m_score", "rfm_code", "rfm_score"]
REQUIRED_LINE_COLUMNS = ("invoice", "stock_code", "amount", "ts", "customer_id", "is_return")
# Customers no grid cell matches (possible when the grid is written for another score scale).
GRID_FALLBACK = "Other"


class EngineInputError(SegmintError):
    """The engine was handed a frame it cannot use (missing column, impossible date)."""


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise EngineInputError(f"{what}: required column(s) {', '.join(missing)} missing")


def codes_of(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per value, -1 when missing; the distinct values as sorted strings)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = values.cat.categories
        codes = values.cat.codes.to_numpy().astype(np.int64)
        if (pd.api.types.infer_dtype(categories, skipna=False) == "string"
                and categories.is_monotonic_increasing
                and np.bincount(codes[codes >= 0], minlength=len(categories)).all()):
            # Already the sorted distinct texts, each used (a window's history,
            # engine.store.invoice_days): the codes as they are, not 100,000 ids sorted again.
            return codes, categories.to_numpy(dtype=object)
    codes, uniques = pd.factorize(values)
    return text_codes(codes, uniques)


def text_codes(codes: np.ndarray, uniques: Any) -> tuple[np.ndarray, np.ndarray]:
    """pd.factorize's (codes, uniques) recoded to index the distinct values as sorted strings;
    two raw values with the same text (1 and "1") get one code."""
    names, remap = np.unique(np.asarray(uniques, dtype=object).astype(str), return_inverse=True)
    coded = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1) if len(uniques) else codes
    return coded.astype(np.int64), names.astype(object)


def by_code(values: Any, codes: np.ndarray, n: int) -> SeriesGroupBy[Any, Any]:
    """values grouped by codes (0 <= code < n), as pandas groups a Series by an integer key:
    the same groups in code order and the same reductions (sums compensated), but on a
    categorical key made from the codes, which pandas takes as they are instead of hashing
    them (a 4-month window at 10 M lines groups 1.35 M rows seven times). Reductions give a
    Series indexed by the codes present, as integers."""
    key = pd.CategoricalIndex(pd.Categorical.from_codes(codes, categories=pd.RangeIndex(n)))
    return pd.Series(values).groupby(key, observed=True)


def codes_index(frame: Reduced) -> Reduced:
    """A by_code reduction with its index as plain integer codes."""
    frame.index = pd.Index(np.asarray(frame.index, dtype=np.int64))
    return frame


def customer_lines(lines: pd.DataFrame, non_product_codes: Sequence[str]) -> pd.DataFrame:
    """The lines that count for customer metrics: with a customer id, product codes only."""
    require_columns(lines, REQUIRED_LINE_COLUMNS, "lines frame")
    keep = lines["customer_id"].notna() & ~lines["stock_code"].isin(list(non_product_codes))
    kept = lines.loc[keep, ["invoice", "amount", "ts", "customer_id", "is_return"]].copy()
    kept["customer_id"] = kept["customer_id"].astype(str)
    # The sign of a return's amount is not trusted: a return always subtracts its value.
    kept["net"] = np.where(kept["is_return"], -kept["amount"].abs(), kept["amount"])
    return kept


@dataclass(frozen=True)
class CustomerLines:
    """The lines of `customer_lines` as arrays, customers as integer codes: ``ids[customer]`` is
    the customer id of a line, and ``ids`` is sorted, so code order is customer id order.
    Grouping by these codes is much cheaper than grouping by the id strings. ``invoice`` is an
    integer code per line (-1 if missing) that only tells invoices apart."""

    ids: np.ndarray
    customer: np.ndarray
    invoice: np.ndarray
    ts: np.ndarray
    is_return: np.ndarray
    net: np.ndarray

    def since(self, start: pd.Timestamp) -> CustomerLines:
        """The lines at or after start, with the same customer codes (a window of a history
        coded once)."""
        keep = self.ts >= start.to_datetime64()
        return CustomerLines(ids=self.ids, customer=self.customer[keep],
                             invoice=self.invoice[keep], ts=self.ts[keep],
                             is_return=self.is_return[keep], net=self.net[keep])


class LineCodes(Protocol):
    """Integer codes of every line of a frame, made once for a whole run
    (engine.baskets.CodedLines): the customer (-1 if missing) indexing the sorted text ids
    ``customers``, the invoice (-1 if missing), and whether the stock code is a non-product
    code."""

    @property
    def customer(self) -> np.ndarray: ...
    @property
    def customers(self) -> np.ndarray: ...
    @property
    def invoice(self) -> np.ndarray: ...
    @property
    def non_product(self) -> np.ndarray: ...


def coded_customer_lines(lines: pd.DataFrame, non_product_codes: Sequence[str],
                         codes: LineCodes | None = None) -> CustomerLines:
    """The same lines as `customer_lines` (same filter, ids as text, same net) without copying
    the frame: one factorisation of the customer ids, then plain arrays. With ``codes`` (the
    same frame's LineCodes, same non-product codes) nothing is factorised again."""
    require_columns(lines, REQUIRED_LINE_COLUMNS, "lines frame")
    if codes is not None:
        keep = (codes.customer >= 0) & ~codes.non_product
        ids, customer, invoice = codes.customers, codes.customer[keep], codes.invoice[keep]
    else:
        keep = lines["customer_id"].notna().to_numpy(dtype=bool)
        if len(non_product_codes):
            keep &= ~lines["stock_code"].isin(list(non_product_codes)).to_numpy(dtype=bool)
        customer, ids = codes_of(lines["customer_id"][keep])  # ids as text, sorted
        invoice = invoice_codes(lines["invoice"][keep])
    is_return = lines["is_return"].to_numpy(dtype=bool)[keep]
    amount = lines["amount"].to_numpy(dtype=float)[keep]
    return CustomerLines(
        ids=ids,
        customer=customer.astype(np.int64),
        invoice=invoice.astype(np.int64),
        ts=lines["ts"].to_numpy(dtype="datetime64[ns]")[keep],
        is_return=is_return,
        # The sign of a return's amount is not trusted: a return always subtracts its value.
        net=np.where(is_return, -np.abs(amount), amount),
    )


def invoice_codes(invoices: pd.Series) -> np.ndarray:
    """An integer per line that tells invoices apart (-1: none). Non-negative integer keys (the
    columnar copy's, engine.store.columnar.invoice_keys) as they are: factorising the 1.35 M
    keys of a 4-month window's history at 10 M lines took 0.11-0.25 s, and only the window's
    rows are counted (distinct_invoices makes those dense when it must). Else factorised."""
    if pd.api.types.is_integer_dtype(invoices.dtype) and len(invoices):
        keys = invoices.to_numpy(dtype=np.int64, na_value=-1)
        if (keys >= 0).sum() == invoices.notna().sum():  # no key is negative
            return keys
    return pd.factorize(invoices)[0].astype(np.int64)


def distinct_invoices(customer: np.ndarray, invoice: np.ndarray, n: int) -> np.ndarray:
    """How many distinct invoices (invoice codes >= 0) each customer code 0..n-1 has."""
    named = invoice >= 0
    customer, invoice = customer[named], invoice[named]
    if not len(invoice):
        return np.zeros(n, dtype=np.int64)
    width = int(invoice.max()) + 1
    if width > (1 << 62) // max(n, 1):  # keys too wide to pair with the customer: made dense
        invoice = pd.factorize(invoice)[0]
        width = int(invoice.max()) + 1
    pairs = pd.unique(customer * width + invoice)  # distinct (customer, invoice) pairs
    return np.bincount(pairs // width, minlength=n)


def rfm_table(lines: pd.DataFrame, *, as_of: date, non_product_codes: Sequence[str] = (),
              coded: CustomerLines | None = None) -> pd.DataFrame:
    """One row per customer with a purchase: recency_days, frequency, monetary (+ first
    purchase date and tenure_days for the extra clustering features), sorted by customer_id.
    ``coded`` (optional) is ``coded_customer_lines(lines, non_product_codes)``, already made."""
    if coded is None:
        coded = coded_customer_lines(lines, non_product_codes)
    buy = ~coded.is_return
    buy_ts = pd.Series(coded.ts[buy])
    check_as_of(buy_ts.max() if len(buy_ts) else None, as_of)
    buyers = coded.customer[buy]
    spans = codes_index(by_code(buy_ts, buyers, len(coded.ids)).agg(["min", "max"]))
    present = spans.index.to_numpy(dtype=np.int64)
    frequency = distinct_invoices(buyers, coded.invoice[buy], len(coded.ids))
    net = codes_index(by_code(coded.net, coded.customer, len(coded.ids)).sum())
    return rfm_frame(coded.ids[present], first=spans["min"], last=spans["max"],
                     frequency=frequency[present], net=net.reindex(present).fillna(0.0),
                     as_of=as_of)


def rfm_frame(ids: np.ndarray, *, first: pd.Series, last: pd.Series, frequency: np.ndarray,
              net: pd.Series, as_of: date) -> pd.DataFrame:
    """The RFM table from per-customer figures (first and last purchase moment, distinct purchase
    invoices, net value), in the order given: the one place where moments become calendar days
    (both backends hand their figures here, engine/spark/features.py too)."""
    as_of_ts = pd.Timestamp(as_of)
    first = first.dt.normalize()
    last_day = last.dt.normalize()
    return pd.DataFrame({
        "customer_id": ids,
        "recency_days": (as_of_ts - last_day).dt.days.to_numpy(dtype=np.int64),
        "frequency": np.asarray(frequency).astype(np.int64),
        "monetary": net.round(2).to_numpy(dtype=float),
        "first_purchase": first.to_numpy(),
        "tenure_days": (as_of_ts - first).dt.days.to_numpy(dtype=np.int64),
    })[RFM_COLUMNS]


def check_as_of(last_purchase: pd.Timestamp | None, as_of: date) -> None:
    """as_of must not be before the day of the window's last purchase."""
    if last_purchase is not None and last_purchase >= pd.Timestamp(as_of) + pd.Timedelta(days=1):
        raise EngineInputError(f"as_of {as_of} is before the last purchase in the window "
                               f"({last_purchase.date()})")


def quantile_scores(values: pd.Series, keys: pd.Series, levels: int) -> pd.Series:
    """Scores 1..levels by rank: balanced bins that stay reproducible under heavy ties.

    Customers are ordered by (value, key) and the ranks cut into equal-sized bins (what qcut on
    rank(method="first") does), so equal values may land in neighbouring bins but every bin holds
    n/levels customers and the same input always gives the same scores.
    """
    return _scores(values, _key_order(keys), levels)


def _key_order(keys: pd.Series) -> np.ndarray:
    """Each key's rank among the keys as text (ties between equal values go by it). Keys that
    are already distinct texts in order (an RFM table, sorted by customer id) are their own
    positions: 100,000 ids are then neither copied as text nor sorted again."""
    index = pd.Index(keys)
    if (pd.api.types.infer_dtype(index, skipna=False) == "string"
            and index.is_monotonic_increasing and index.is_unique):
        return np.arange(len(index))
    order = np.argsort(keys.to_numpy(dtype=str), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def _scores(values: pd.Series, key_order: np.ndarray, levels: int) -> pd.Series:
    n = len(values)
    if n == 0:
        return pd.Series([], dtype="int64", index=values.index)
    order = np.lexsort((key_order, values.to_numpy(dtype=float)))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    return pd.Series(ranks * levels // n + 1, index=values.index, dtype="int64")


# rfm_code by rfm_score (R*100 + F*10 + M with single-digit scores: the same three digits).
_CODES = np.array([str(score) for score in range(1000)], dtype=object)


def rfm_scores(table: pd.DataFrame, *, levels: int = 5) -> pd.DataFrame:
    """Adds r_score (recent = high), f_score, m_score, rfm_code ("324") and rfm_score."""
    require_columns(table, ["customer_id", "recency_days", "frequency", "monetary"], "RFM table")
    scored = table.copy()
    keys = _key_order(scored["customer_id"])
    # Fewer days since the last purchase is better: score the negated recency.
    scored["r_score"] = _scores(-scored["recency_days"], keys, levels)
    scored["f_score"] = _scores(scored["frequency"], keys, levels)
    scored["m_score"] = _scores(scored["monetary"], keys, levels)
    score = scored["r_score"] * 100 + scored["f_score"] * 10 + scored["m_score"]
    scored["rfm_code"] = _CODES[score.to_numpy()]
    scored["rfm_score"] = score
    return scored


def score_segments(rfm_score: pd.Series, segments: Sequence[ScoreSegment]) -> pd.Series:
    """Named segment by rfm_score bands: the first band whose min_score is reached wins."""
    conditions = [rfm_score.to_numpy() >= band.min_score for band in segments]
    names = [band.name for band in segments]
    chosen = np.select(conditions, names, default=names[-1])
    return pd.Series(chosen, index=rfm_score.index, dtype=object)


def grid_segments(r_score: pd.Series, f_score: pd.Series,
                  grid: Sequence[GridSegment]) -> pd.Series:
    """Named segment by the R x F grid (inclusive ranges); first match wins, else 'Other'."""
    r, f = r_score.to_numpy(), f_score.to_numpy()
    conditions = [(r >= cell.r[0]) & (r <= cell.r[1]) & (f >= cell.f[0]) & (f <= cell.f[1])
                  for cell in grid]
    chosen = np.select(conditions, [cell.name for cell in grid], default=GRID_FALLBACK)
    return pd.Series(chosen, index=r_score.index, dtype=object)


def rfm_segments(lines: pd.DataFrame, *, as_of: date, settings: RfmSettings,
                 non_product_codes: Sequence[str] = (),
                 coded: CustomerLines | None = None) -> pd.DataFrame:
    """rfm_table + scores + both named schemes (rfm_segment, rfm_grid_segment)."""
    return scored_segments(rfm_table(lines, as_of=as_of, non_product_codes=non_product_codes,
                                     coded=coded), settings)


def scored_segments(table: pd.DataFrame, settings: RfmSettings) -> pd.DataFrame:
    """An RFM table (rfm_table's columns) + scores + both named schemes."""
    scored = rfm_scores(table, levels=settings.score_levels)
    scored["rfm_segment"] = score_segments(scored["rfm_score"], settings.segments)
    scored["rfm_grid_segment"] = grid_segments(scored["r_score"], scored["f_score"],
                                               settings.grid_segments)
    return scored
