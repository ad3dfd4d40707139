"""The data each page shows, from the store's SQL, cached by data version and window.

Pages ask this module, never the store directly, so every expensive frame goes through the
shared cache (flask-caching) and the same window rules apply everywhere.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.columns import SEGMENT_COLUMNS, split_items
from engine.dates import last_day
from engine.sales_figures import SalesFigures, distinct_inverse
from engine.store import columnar, results
from engine.store import jobs as jobs_store
from engine.store import runs as run_store
from engine.store import sales as sales_store
from engine.store.columnar import ColumnarCopy

from . import context
from .components import count
from .filters import Filters

if TYPE_CHECKING:
    from engine.window import WindowFigures


@dataclass(frozen=True)
class Scope:
    """Which run and which window a page shows, and whether the window was recomputed."""

    run: dict[str, Any] | None
    since: date | None
    until: date | None
    recomputed: bool

    @property
    def run_id(self) -> int | None:
        return int(self.run["id"]) if self.run else None

    def describe(self) -> str:
        window = f"{_day(self.since, 'first sale')} – {_day(self.until, 'last sale')}"
        if self.run is None:
            return f"Window {window}; no segmentation run yet."
        run = self.run
        text = (f"Run #{run['id']} (k = {count(run.get('k'))}, as of "
                f"{_day(run.get('as_of'), '?')}, {count(run.get('n_customers'))} customers); "
                f"window {window}")
        if self.recomputed:
            text += (" — RFM and classes recomputed for this window with run "
                     f"#{run['id']}'s clusters")
        return text + "."


def _day(value: Any, default: str) -> str:
    if value is None:
        return default
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def published_run() -> dict[str, Any] | None:
    return context.cached("published-run", compute=lambda: run_store.published_run(
        engine=context.engine()))


def data_span() -> tuple[date, date] | None:
    return context.cached("span", compute=lambda: sales_store.data_span(engine=context.engine()))


def run_window(run: dict[str, Any]) -> tuple[date | None, date | None]:
    """The window a run was computed on (until defaults to the day before as_of)."""
    return run.get("since"), last_day(run.get("until"), run.get("as_of"))


def bounded_window(filters: Filters, since: date | None,
                   until: date | None) -> tuple[date | None, date | None]:
    """The filter's bounds with the defaults for the missing one; a lone bound beyond the other
    default (since after the data's end, until before its start) makes a one-day window at that
    bound, an empty one, instead of a backwards window such as '2030-01-01 – 2011-12-09'."""
    since, until = filters.since or since, filters.until or until
    if since is not None and until is not None and since > until:
        if filters.since is not None:
            until = since
        else:
            since = until
    return since, until


def scope(filters: Filters) -> Scope:
    run = published_run()
    if run is None:
        first, last = data_span() or (None, None)
        return Scope(None, *bounded_window(filters, first, last), False)
    run_since, run_until = run_window(run)
    span = data_span()
    if span is not None:
        run_since = run_since or span[0]
        run_until = run_until or span[1]
    if not filters.has_window:
        return Scope(run, run_since, run_until, False)
    since, until = bounded_window(filters, run_since, run_until)
    return Scope(run, since, until, (since, until) != (run_since, run_until))


# --- overview and products ---------------------------------------------------------------------

def new_customers() -> pd.DataFrame:
    """New customers per month (over every line, whatever the window): computed once per data
    version and kept (every analyst's window on Overview reads it; no default view does, and
    its SQL over every customer's first purchase took 0.5-1.5 s at 10 M lines, which a window's
    first visit paid again each time the shared cache's copy expired)."""
    return context.cached("new-customers", keep=True, compute=lambda: (
        sales_store.new_customers_by_month(engine=context.engine())))


def run_sales(since: date | None, until: date | None, *,
              monthly: bool = False) -> SalesFigures | None:
    """The published run's own sales figures (engine.sales_figures, made by the backend that
    held its lines) when they are exactly what the store gives for [since, until]: no line
    loaded since the run read them, the same days of data, the same non-product codes. The
    monthly figures also need the run's window to reach the last line: a month's new customers
    count first purchases up to its end. None: compute them from the store."""
    run, span = published_run(), data_span()
    stored = (run.get("diagnostics") or {}).get("sales") if run else None
    if run is None or span is None or not stored:
        return None
    first, last = span

    def clipped(start: date | None, end: date | None) -> tuple[date, date]:
        return max(start or first, first), min(end or last, last)
    held = clipped(*run_window(run))
    codes = sorted(context.settings().ingest.non_product_codes)
    if (clipped(since, until) != held or (monthly and held[1] != last)
            or stored.get("non_product_codes") != codes):
        return None
    seen = context.cached("lines-seen", compute=lambda: jobs_store.lines_seen(
        engine=context.engine()))
    if (run.get("params") or {}).get("lines_seen") != seen:
        return None
    run_id = int(run["id"])
    figures: SalesFigures | None = context.cached("run-sales", run_id, lasting=True,
                                                  compute=lambda: results.read_sales(
                                                      engine=context.engine(), run_id=run_id))
    return figures


def sales(since: date | None, until: date | None) -> tuple[dict[str, float], pd.DataFrame]:
    def compute() -> tuple[dict[str, float], pd.DataFrame]:
        figures = run_sales(since, until, monthly=True)
        if figures is not None:
            return figures.kpis(), figures.months.copy()
        engine, new = context.engine(), new_customers()
        # The window's KPIs on a second connection while this one reads its months: both are
        # the database's work (the driver lets go of Python's lock while it waits), each
        # 0.4-1.0 s on PostgreSQL for a 4-month window at 10 M lines.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmint-kpis") as pool:
            kpis = pool.submit(sales_store.kpis, engine=engine, since=since, until=until)
            months = sales_store.monthly_trends(engine=engine, since=since, until=until,
                                                new_customers=new)
            return kpis.result(), months
    return context.cached("sales", since, until, compute=compute)


def _window_products(since: date | None,
                     until: date | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per product, per customer and product) of the window, from one read of its product
    lines (engine.store.sales.window_products; customer ids and stock codes categorical, a
    small file for the shared cache)."""
    codes = tuple(context.settings().ingest.non_product_codes)
    return context.cached("window-products", since, until, codes, compute=lambda: (
        sales_store.window_products(engine=context.engine(), non_product_codes=codes,
                                    since=since, until=until, copy=columnar_copy())))


def columnar_copy() -> ColumnarCopy | None:
    """The columnar copy of the lines (engine.store.columnar) when it holds every loaded file,
    looked at once per request; None: read the store."""
    from flask import g

    if "segmint_columnar" not in g:
        g.segmint_columnar = columnar.current_for(context.engine(), context.settings())
    found: ColumnarCopy | None = g.segmint_columnar
    return found


def products(since: date | None, until: date | None) -> pd.DataFrame:
    """Per product of the window: description, net revenue, net quantity, buying customers
    (the published run's figures when they are the window's: run_sales)."""
    figures = run_sales(since, until)
    if figures is not None and figures.products is not None:
        made = figures.products
        return context.cached("run-products", since, until, lasting=True,
                              compute=lambda: _described(made))
    return _window_products(since, until)[0]


PRODUCT_GROUPINGS = ("customer_class", "cluster")


def customer_products(since: date | None, until: date | None) -> pd.DataFrame:
    """Per customer and product of the window: revenue, quantity, purchase lines."""
    return _window_products(since, until)[1]


def _selected_lines(current: Scope, filters: Filters) -> pd.DataFrame:
    """customer_products of the scope's window (stock_code, revenue, quantity, purchases) for
    the customers of the scope's rows (the run's, or recomputed for the window) that pass the
    class and segment filters, with their class and cluster beside each product."""
    rows = filter_rows(segment_rows(current), filters)
    groups = rows.set_index(rows["customer_id"].astype(str))[list(PRODUCT_GROUPINGS)]
    lines = customer_products(current.since, current.until)
    # Matched through the categorical's codes: a window holds a million (customer, product)
    # pairs, and neither their ids as Python strings nor a merge on them are needed; the
    # chosen pairs are taken column by column (a frame's .loc took 0.14 s of a 4-month window).
    ids = pd.Categorical(lines["customer_id"])
    row = groups.index.get_indexer(ids.categories.astype(str))[ids.codes]
    chosen = np.flatnonzero((ids.codes >= 0) & (row >= 0))
    stock = pd.Categorical(lines["stock_code"])
    taken: dict[str, Any] = {
        "stock_code": pd.Categorical.from_codes(stock.codes[chosen], categories=stock.categories),
        **{name: lines[name].to_numpy()[chosen] for name in ("revenue", "quantity", "purchases")}}
    for name in PRODUCT_GROUPINGS:  # categorical too: grouped on codes, not on a million labels
        labels = pd.Categorical(groups[name].to_numpy())
        taken[name] = pd.Categorical.from_codes(labels.codes[row[chosen]],
                                                categories=labels.categories)
    return pd.DataFrame(taken)


def _summed_by(lines: pd.DataFrame, keys: list[str], sums: list[str]) -> pd.DataFrame:
    """lines grouped by keys (categorical or not; groups without lines left out), with the sums
    of the columns `sums` and `customers`, the rows with a purchase; keys back to plain values.

    The keys are grouped as one integer (their codes combined) and summed by np.bincount over
    the combined keys present: a window holds a million (customer, product) pairs, and pandas'
    grouping of them cost 0.2 s of a 4-month window's Products page (a sort of the keys, 0.3 s;
    counting on every possible key, when there are few enough, one pass)."""
    combined = np.zeros(len(lines), dtype=np.int64)
    known = np.ones(len(lines), dtype=bool)  # rows with every key (as groupby's dropna)
    coded: list[tuple[str, pd.Index, int]] = []
    for key in keys:
        column = lines[key]
        if isinstance(column.dtype, pd.CategoricalDtype):  # its codes as they are
            codes, uniques = column.cat.codes.to_numpy(), column.cat.categories
        else:
            codes, uniques = pd.factorize(column)
        width = max(len(uniques), 1)
        combined = combined * width + codes
        known &= codes >= 0
        coded.append((key, pd.Index(uniques), width))
    group, inverse = distinct_inverse(
        combined[known], int(np.prod([width for _, _, width in coded], dtype=np.int64)))
    frame = pd.DataFrame(index=pd.RangeIndex(len(group)))
    for key, uniques, width in reversed(coded):
        frame.insert(0, key, uniques.take(group % width).to_numpy())
        group = group // width
    for name in sums:
        frame[name] = np.bincount(inverse, weights=lines[name].to_numpy(dtype=float)[known],
                                  minlength=len(frame))
    frame["customers"] = np.bincount(inverse, minlength=len(frame),
                                     weights=lines["purchases"].to_numpy()[known] > 0)
    return frame


def _described(frame: pd.DataFrame) -> pd.DataFrame:
    return sales_store.with_descriptions(engine=context.engine(), frame=frame)


def products_by_group(current: Scope, filters: Filters, by: str, limit: int = 5) -> pd.DataFrame:
    """Top products per class or per cluster of the scope's customer rows, so a recomputed window
    groups its lines by the window's classes (the Segments page's rows), filters applied."""
    if current.run is None:
        raise ValueError("top products per group need a segmentation run")
    codes = tuple(context.settings().ingest.non_product_codes)

    def compute() -> dict[str, pd.DataFrame]:
        figures = (None if current.recomputed or filters.classes or filters.segments
                   else run_sales(current.since, current.until))
        if figures is not None and figures.groups is not None:
            return {name: _described(_top(_run_groups(figures.groups, name), limit))
                    for name in PRODUCT_GROUPINGS}
        lines = _selected_lines(current, filters)
        return {name: _described(top_products(lines, name, limit)) for name in PRODUCT_GROUPINGS}
    both = context.cached("products-by", current.run_id, current.since, current.until,
                          current.recomputed, filters.classes, filters.segments, codes,
                          lasting=not current.recomputed, compute=compute)
    return both[by]


def top_products(lines: pd.DataFrame, by: str, limit: int) -> pd.DataFrame:
    """The `limit` products with the most net revenue in each group of `by` (group, stock_code,
    revenue, customers with a purchase). lines: customer_products' rows (customer_id,
    stock_code, revenue, purchases) with the customer's group in column `by`. Pure pandas, not
    the store's SQL: a recomputed window's groups exist only here, never in the database."""
    return _top(_summed_by(lines, [by, "stock_code"], ["revenue"]).rename(
        columns={by: "group"}), limit)


def _top(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The `limit` rows of each group with the most revenue (ties by stock code)."""
    frame = frame.sort_values(["group", "revenue", "stock_code"], ascending=[True, False, True])
    top = frame.groupby("group", sort=True).head(limit).reset_index(drop=True)
    return top.astype({"revenue": float, "customers": int})


def _run_groups(groups: pd.DataFrame, by: str) -> pd.DataFrame:
    """A run's per-group product figures of one grouping (group, stock_code, revenue,
    customers); cluster numbers back from text."""
    frame = groups.loc[groups["grouping"] == by, ["group", "stock_code", "revenue", "customers"]]
    if by == "cluster":
        frame = frame.astype({"group": np.int64})
    return frame.reset_index(drop=True)


def selected_products(current: Scope, filters: Filters) -> pd.DataFrame:
    """products() for the customers the class and segment filters select: revenue, quantity and
    buying customers per product (lines without a customer are not in any selection)."""
    codes = tuple(context.settings().ingest.non_product_codes)

    def compute() -> pd.DataFrame:
        lines = _selected_lines(current, filters)
        frame = _summed_by(lines, ["stock_code"], ["revenue", "quantity"])
        frame = frame.sort_values("stock_code").reset_index(drop=True)
        return _described(frame.astype({"revenue": float, "quantity": float, "customers": int}))
    return context.cached("selected-products", current.run_id, current.since, current.until,
                          current.recomputed, filters.classes, filters.segments, codes,
                          lasting=not current.recomputed, compute=compute)


# --- segments ----------------------------------------------------------------------------------

def run_rows(run_id: int) -> pd.DataFrame:
    return context.cached("run-rows", run_id, keep=True, compute=lambda: shared_labels(
        results.customer_results(engine=context.engine(), run_id=run_id)))


def shared_labels(rows: pd.DataFrame) -> pd.DataFrame:
    """rows with each text column of few distinct values (segment, tier, class, RFM code)
    holding one string object per value instead of one per row, values and dtype unchanged.
    Every worker keeps the run's rows: at 185,000 customers the four label columns held 46 MB
    of separate copies of a few dozen strings, and pickled as many."""
    for name in rows.columns:
        if rows[name].dtype != object:
            continue
        codes, uniques = pd.factorize(rows[name].to_numpy())
        if (codes >= 0).all() and len(uniques) <= len(rows) // 2:
            rows[name] = np.asarray(uniques, dtype=object)[codes]
    return rows


def segment_rows(current: Scope) -> pd.DataFrame:
    """Per-customer rows of the scope: the run's own, or recomputed for the window."""
    if current.run is None:
        return pd.DataFrame(columns=SEGMENT_COLUMNS)
    if not current.recomputed:
        return run_rows(int(current.run["id"]))
    return _window_figures(current).rows


def _window_figures(current: Scope) -> WindowFigures:
    """A recomputed window's rows and its customers' KPI figures, from one read of the window
    customers' history: the Products page needs the rows, the Segments page both, so whichever
    comes first computes both and the other reads them from the cache."""
    from engine.window import window_figures

    run = current.run
    assert run is not None and current.recomputed

    def compute() -> WindowFigures:
        return window_figures(customer_history(current.since, current.until), signups(),
                              run=run, run_rows=run_rows(int(run["id"])),
                              settings=context.settings(), since=current.since,
                              until=current.until, kpis_as_of=_kpis_as_of(current))
    return context.cached("window", run["id"], current.since, current.until, compute=compute)


def _kpis_as_of(current: Scope) -> date:
    """Where the segment KPIs of a scope stop (exclusive): the window's end, or the run's as_of
    for the run's own window."""
    from engine.dates import window_end

    assert current.run is not None
    end = window_end(current.until) if current.recomputed else None
    return end or current.run["as_of"]  # type: ignore[no-any-return]


def signups() -> pd.DataFrame:
    """signup_date of every customer on file (the classes' "New"), indexed by customer_id, read
    once per data version: every recomputed window needs it."""
    def compute() -> pd.DataFrame:
        from engine.store.customers import load_customers

        frame = load_customers(engine=context.engine())[["customer_id", "signup_date"]]
        return frame.set_index(frame["customer_id"].astype(str).rename("customer_id"))[
            ["signup_date"]].astype({"signup_date": "datetime64[ns]"})
    return context.cached("signups", keep=True, compute=compute)


def customer_history(since: date | None, until: date | None) -> pd.DataFrame:
    """What RFM, the classes and the segment KPIs of the window [since, until] read: the history
    up to until's end of the customers with a line in the window, from the invoice_day summary's
    customer rows as lines (engine.store.invoice_days.customer_history; from the columnar copy
    of those rows when it is complete), or every line up to until when the summary was built
    with other non-product codes than the settings'. Read once per computation and not kept:
    it is a request's largest object."""
    from engine.store import invoice_days

    engine = context.engine()
    codes = context.settings().ingest.non_product_codes
    copy = columnar_copy()
    if copy is not None:
        return columnar.customer_history(copy, until=until, active_since=since)
    if invoice_days.codes_match(engine=engine, codes=codes):
        return invoice_days.customer_history(engine=engine, until=until, active_since=since)
    from engine.rfm import REQUIRED_LINE_COLUMNS
    from engine.store.lines_read import load_lines

    return load_lines(engine=engine, until=until, columns=REQUIRED_LINE_COLUMNS)


def segment_kpis(current: Scope, filters: Filters) -> pd.DataFrame:
    """KPIs per class, RFM segment and persona (engine/kpis.py) of the scope's customers (after
    the class / segment filters), over the scope's window: it follows the date window."""
    if current.run is None:
        from engine.columns import KPI_COLUMNS

        return pd.DataFrame(columns=KPI_COLUMNS)
    run = current.run
    codes = tuple(context.settings().ingest.non_product_codes)

    def compute() -> pd.DataFrame:
        from engine.dates import last_day
        from engine.kpis import kpis_of_segments, segment_kpis

        rows = filter_rows(segment_rows(current), filters)
        if current.recomputed:
            window = _window_figures(current)
            if window.kpis is not None:
                return kpis_of_segments(window.kpis, rows)
        as_of = _kpis_as_of(current)
        lines = customer_history(current.since, last_day(None, as_of))
        return segment_kpis(lines, rows, as_of=as_of, since=current.since,
                            non_product_codes=list(codes))
    return context.cached("segment-kpis", run["id"], current.since, current.until,
                          filters.classes, filters.segments, codes,
                          lasting=not current.recomputed, compute=compute)


def filter_rows(rows: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    if filters.classes:
        rows = rows[rows["customer_class"].isin(filters.classes)]
    if filters.segments:
        rows = rows[rows["rfm_segment"].isin(filters.segments)]
    return rows.reset_index(drop=True)


def summarise(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    """Customers, net value, mean value and value share per group of customer rows."""
    if rows.empty:
        return pd.DataFrame(columns=[by, "customers", "monetary", "mean_monetary", "value_share"])
    grouped = rows.groupby(by)["monetary"]
    summary = pd.DataFrame({"customers": grouped.size(), "monetary": grouped.sum().astype(float),
                            "mean_monetary": grouped.mean().astype(float)}).reset_index()
    positive = summary["monetary"].clip(lower=0)
    summary["value_share"] = positive / positive.sum() if positive.sum() else 0.0
    return summary.sort_values("customers", ascending=False).reset_index(drop=True)


def filter_options() -> tuple[list[str], list[str]]:
    """Classes and RFM segment names the filter bar offers (from the published run)."""
    run = published_run()
    if run is None:
        return [], []
    rows = run_rows(int(run["id"]))
    settings = context.settings()
    classes = sorted(set(rows["customer_class"]))
    segments = [s.name for s in settings.rfm.segments]
    return classes, segments


def runs() -> pd.DataFrame:
    return context.cached("runs", compute=lambda: run_store.list_runs(
        engine=context.engine(), status=run_store.SUCCEEDED, limit=100))


def transitions(from_run: int, to_run: int) -> pd.DataFrame:
    """Class flows between two runs (source, target, customers): the export's transitions."""
    return context.cached("transitions", from_run, to_run, lasting=True,
                          compute=lambda: results.transitions(
        engine=context.engine(), from_run=from_run, to_run=to_run).rename(
        columns={"from_class": "source", "to_class": "target"}))


def profiles(run_id: int) -> pd.DataFrame:
    return context.cached("profiles", run_id, lasting=True,
                          compute=lambda: results.cluster_profiles(engine=context.engine(),
                                                                   run_id=run_id))


def rules(run_id: int) -> pd.DataFrame:
    """The run's rules with the products' names beside the stock codes."""
    def compute() -> pd.DataFrame:
        engine = context.engine()
        found = results.rules_by_lift(engine=engine, run_id=run_id)
        codes = {code for column in ("antecedents", "consequents") for items in found[column]
                 for code in split_items(items)}
        names = sales_store.product_names(engine=engine, stock_codes=sorted(codes))

        def named(items: str) -> str:
            return " + ".join(names.get(code, code) for code in split_items(items))
        found.insert(1, "if_bought", found["antecedents"].map(named))
        found.insert(2, "then_buy", found["consequents"].map(named))
        return found
    return context.cached("rules", run_id, lasting=True, compute=compute)
