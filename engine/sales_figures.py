"""A run's sales figures: the KPIs, the monthly figures and the product figures of its window,
made by the backend that holds the lines (engine.backend; engine/spark/sales.py on Spark) and
published with the run, so the dashboard's default views read a few thousand rows instead of
aggregating the lines again (dashboard/frames.py).

The definitions are the dashboard's (engine.store.sales over invoice_day and the lines), on
every line of the window, with a customer or not (SPEC.md, "Data and its definitions"):
- revenue: the lines' amounts as stored, summed (returns carry their negative amounts);
- orders: distinct purchase invoices (an invoice with only returns is not an order); a month
  counts the invoices with a purchase line in it;
- customers (active customers of a month): distinct customers with a purchase line;
- new customers of a month: the customers whose first purchase in the history (every line
  before the window's end) falls in it;
- per product (a stock code that is not a non-product code): revenue, quantity (null when the
  lines carry none) and the customers with a purchase line of it;
- per product and customer class, and per product and cluster (`group_products`, once the run
  has classes and clusters): the revenue and buying customers of the run's customers (lines
  without a customer belong to no group).
Months are the UTC calendar months of the lines' moments, as YYYY-MM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine.rfm import codes_of, text_codes

if TYPE_CHECKING:
    from engine.baskets import CodedLines

MONTH_COLUMNS = ["month", "revenue", "orders", "active_customers", "new_customers"]
PRODUCT_COLUMNS = ["stock_code", "revenue", "quantity", "customers"]
GROUP_PRODUCT_COLUMNS = ["grouping", "group", "stock_code", "revenue", "customers"]
GROUPINGS = ("customer_class", "cluster")
TOTAL_NAMES = ("revenue", "orders", "customers", "lines")


@dataclass(frozen=True)
class SalesFigures:
    """totals: revenue, orders, customers, lines of the window; months: MONTH_COLUMNS, one row
    per month with a line, ascending; products: PRODUCT_COLUMNS by stock code, None when no line
    of the history has a stock code; groups: GROUP_PRODUCT_COLUMNS (group as text) by grouping,
    group and stock code, None until the run has its classes (or without products)."""

    totals: dict[str, float]
    months: pd.DataFrame
    products: pd.DataFrame | None
    groups: pd.DataFrame | None = None
    non_product_codes: tuple[str, ...] = ()  # the codes the product figures left out

    def kpis(self) -> dict[str, float]:
        """The totals as engine.store.sales.kpis gives them (with the average order value)."""
        revenue, orders = float(self.totals["revenue"]), int(self.totals["orders"])
        return {"revenue": revenue, "orders": orders, "customers": int(self.totals["customers"]),
                "aov": revenue / orders if orders else 0.0, "lines": int(self.totals["lines"])}


def month_labels(months: np.ndarray) -> list[str]:
    """YYYY-MM of numpy months (datetime64[M] as integers since 1970-01)."""
    return [str(month) for month in np.asarray(months, dtype="datetime64[M]")]


def months_of(ts: pd.Series) -> np.ndarray:
    """The UTC calendar month of each moment, as integers (months since 1970-01)."""
    return ts.to_numpy(dtype="datetime64[ns]").astype("datetime64[M]").astype(np.int64)


def distinct_keys(keys: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, ascending. A stable sort: numpy's hashed unique
    is several times slower on these arrays (engine.baskets.distinct_sorted says the same)."""
    ordered = np.sort(keys, kind="stable")
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first]


# distinct_inverse counts on every possible key (8 bytes each, 128 MiB at most) when told there
# are at most this many; more are sorted.
DENSE_KEYS = 1 << 24


def distinct_inverse(keys: np.ndarray,
                     n_keys: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, return_inverse=True) by a stable sort (see distinct_keys), or, when
    every key is below n_keys <= DENSE_KEYS (classes or clusters x products), by one pass of
    np.bincount over every possible key."""
    if n_keys is not None and n_keys <= DENSE_KEYS:
        present = np.bincount(keys, minlength=n_keys) > 0
        return np.flatnonzero(present), (np.cumsum(present) - 1)[keys]
    ordered, order = sorted_with_order(keys)
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def sorted_with_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys sorted, the stable order that sorts them). Non-negative keys small enough to share
    one int64 with their position are sorted as such pairs: numpy sorts values about twice as
    fast as it sorts positions (a 4-month window's 1.9 M customer x product keys at 10 M lines:
    0.21 -> 0.11 s)."""
    n = len(keys)
    shift = max(n - 1, 1).bit_length()
    if n and int(keys.min()) >= 0 and int(keys.max()) < 1 << (62 - shift):
        packed = np.sort((keys.astype(np.int64) << shift) | np.arange(n, dtype=np.int64))
        return packed >> shift, packed & ((1 << shift) - 1)
    order = np.argsort(keys, kind="stable")
    return keys[order], order


# Distinct counts over at most this many possible keys use a bitmap (one byte per key), which
# costs one pass; larger key spaces are sorted.
BITMAP_KEYS = 1 << 26


def distinct_per_group(group: np.ndarray, member: np.ndarray, n_groups: int) -> np.ndarray:
    """How many distinct members each group 0..n_groups-1 has (rows with member -1 left out)."""
    known = member >= 0
    width = int(member.max()) + 1 if known.any() else 1
    keys = group[known].astype(np.int64) * width + member[known]
    if n_groups * width <= BITMAP_KEYS:
        seen = np.zeros(n_groups * width, dtype=bool)
        seen[keys] = True
        return seen.reshape(n_groups, width).sum(axis=1).astype(np.int64)
    return np.bincount(distinct_keys(keys) // width, minlength=n_groups).astype(np.int64)


def distinct_count(values: np.ndarray) -> int:
    """How many distinct values an integer array holds, -1 left out."""
    return int(distinct_per_group(np.zeros(len(values), dtype=np.int64), values, 1)[0])


def month_codes(months: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct months of months_of's array, ascending; each line's index among them)."""
    if not len(months):
        return months, months
    low = int(months.min())
    present = np.bincount(months - low) > 0
    index = np.cumsum(present) - 1
    return low + np.flatnonzero(present), index[months - low]


def sales_figures(window: pd.DataFrame, history: pd.DataFrame, *,
                  non_product_codes: Sequence[str], has_products: bool,
                  coded: CodedLines | None = None) -> SalesFigures:
    """The figures of the window's lines; history: every line before the window's end (the
    window itself when nothing precedes it), for the first purchases. coded: the window's
    engine.baskets.CodedLines when the run made them (its invoice and customer codes)."""
    buy = ~window["is_return"].to_numpy(dtype=bool)
    amount = window["amount"].to_numpy(dtype=float)
    if coded is not None:
        invoice, customer = coded.invoice, coded.customer
    else:
        invoice = pd.factorize(window["invoice"])[0].astype(np.int64)
        customer = codes_of(window["customer_id"])[0]
    line_months = months_of(window["ts"])
    months, month = month_codes(line_months)
    n_months = len(months)
    bought_invoice = np.where(buy, invoice, -1)
    buyer = np.where(buy, customer, -1)
    totals = {
        "revenue": float(amount.sum()),
        "orders": distinct_count(bought_invoice),
        "customers": distinct_count(buyer),
        "lines": len(window),
    }
    firsts = _first_purchase_months(history if history is not window else None,
                                    customer, buy, line_months)
    new = pd.Series(firsts).value_counts()
    frame = pd.DataFrame({
        "month": month_labels(months),
        "revenue": np.bincount(month, weights=amount, minlength=n_months),
        "orders": distinct_per_group(month, bought_invoice, n_months),
        "active_customers": distinct_per_group(month, buyer, n_months),
        "new_customers": new.reindex(months, fill_value=0).to_numpy(dtype=np.int64),
    })
    products = (_product_figures(window, buyer, non_product_codes, coded) if has_products
                else None)
    return SalesFigures(totals=totals, months=frame, products=products,
                        non_product_codes=tuple(sorted(non_product_codes)))


def _first_purchase_months(history: pd.DataFrame | None, customer: np.ndarray,
                           buy: np.ndarray, month: np.ndarray) -> np.ndarray:
    """The month of each customer's first purchase line in the history; None: the window,
    whose customer codes, purchase flags and months are given."""
    if history is not None:
        buy = ~history["is_return"].to_numpy(dtype=bool)
        customer = codes_of(history["customer_id"])[0]
        month = months_of(history["ts"])
    keep = buy & (customer >= 0)
    if not keep.any():
        return np.zeros(0, dtype=np.int64)
    first = np.full(int(customer[keep].max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, customer[keep], month[keep])
    return first[first != np.iinfo(np.int64).max]


def _product_codes(window: pd.DataFrame, non_product_codes: Sequence[str],
                   coded: CodedLines | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code per line, -1 for no stock code or a non-product code; the stock codes as sorted
    text; which of them are products)."""
    if coded is not None:
        stock, names = coded.stock, coded.stock_codes
    else:
        stock, names = text_codes(*pd.factorize(window["stock_code"]))
    kept = np.asarray(~pd.Index(names).isin(list(non_product_codes)), dtype=bool)
    product = np.where(np.append(kept, False)[stock], stock, -1).astype(np.int64)
    return product, np.asarray(names, dtype=object), kept


def _product_figures(window: pd.DataFrame, buyer: np.ndarray, non_product_codes: Sequence[str],
                     coded: CodedLines | None) -> pd.DataFrame:
    product, names, kept = _product_codes(window, non_product_codes, coded)
    lines = product >= 0
    n = len(names)
    quantity = (np.bincount(product[lines], weights=window["quantity"].to_numpy(
        dtype=float)[lines], minlength=n) if "quantity" in window.columns
        else np.full(n, np.nan))
    figures = pd.DataFrame({
        "stock_code": names,
        "revenue": np.bincount(product[lines], weights=window["amount"].to_numpy(
            dtype=float)[lines], minlength=n),
        "quantity": quantity,
        "customers": distinct_per_group(np.where(lines, product, 0),
                                        np.where(lines, buyer, -1), n),
    })[kept]
    return figures.sort_values("stock_code", kind="mergesort", ignore_index=True)


def group_products(window: pd.DataFrame, assignments: pd.DataFrame, *,
                   non_product_codes: Sequence[str],
                   coded: CodedLines | None = None) -> pd.DataFrame:
    """Per grouping (customer_class, cluster), group and product: the revenue of the lines of
    the assignments' customers (customer_id, customer_class, cluster) and how many of them have
    a purchase line of it; the dashboard's top products per class and per cluster."""
    product, names, _ = _product_codes(window, non_product_codes, coded)
    customer, customers = ((coded.customer, coded.customers) if coded is not None
                           else codes_of(window["customer_id"]))
    row_of = pd.Index(assignments["customer_id"].astype(str)).get_indexer(
        pd.Index(customers).astype(str))
    row = np.append(row_of, -1)[customer]  # customer -1 picks the appended -1
    keep = (product >= 0) & (row >= 0)
    width = max(len(names), 1)
    pairs, pair = distinct_inverse(row[keep].astype(np.int64) * width + product[keep])
    revenue = np.bincount(pair, weights=window["amount"].to_numpy(dtype=float)[keep],
                          minlength=len(pairs))
    bought = np.bincount(pair, weights=~window["is_return"].to_numpy(dtype=bool)[keep],
                         minlength=len(pairs)) > 0
    pair_row, pair_product = np.divmod(pairs, width)
    frames = []
    for grouping in GROUPINGS:
        labels, groups = pd.factorize(assignments[grouping].astype(str), sort=True)
        keys, key = distinct_inverse(labels[pair_row].astype(np.int64) * width + pair_product)
        group, stock = np.divmod(keys, width)
        frames.append(pd.DataFrame({
            "grouping": grouping,
            "group": np.asarray(groups, dtype=object)[group],
            "stock_code": names[stock],
            "revenue": np.bincount(key, weights=revenue, minlength=len(keys)),
            "customers": np.bincount(key, weights=bought, minlength=len(keys)).astype(np.int64),
        }))
    return sort_groups(pd.concat(frames, ignore_index=True))


def sort_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """GROUP_PRODUCT_COLUMNS ordered by grouping, group and stock code."""
    return frame[GROUP_PRODUCT_COLUMNS].sort_values(
        ["grouping", "group", "stock_code"], kind="mergesort", ignore_index=True)
