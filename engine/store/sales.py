"""Sales and products: the KPIs, monthly trends and product figures the dashboard shows.

Every function is keyword-only, takes the engine explicitly and returns a small DataFrame or dict;
the heavy lifting happens in the database, never in Python. The KPIs and monthly trends read the
invoice_day summary (engine.store.invoice_days: about one row per invoice, a fifth of the lines
on the synthetic data), the product figures read the lines.
Windows follow engine.dates' rule (whole days, both bounds inclusive).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Engine, Select, and_, case, distinct, func, not_, select

from engine.sales_figures import distinct_inverse
from engine.store.invoice_days import NO_CUSTOMER
from engine.store.runs import published_run_query
from engine.store.tables import (
    INVOICE_DAYS,
    LINES,
    PRODUCTS,
    RUNS,
    SOURCE_FILES,
    in_chunks,
    read_frame,
)

if TYPE_CHECKING:
    from engine.store.columnar import ColumnarCopy


def _month(engine: Engine, day: ColumnElement[Any]) -> ColumnElement[str]:
    """YYYY-MM of a date column (invoice_day.day, already the UTC day)."""
    if engine.dialect.name == "postgresql":
        return func.to_char(day, "YYYY-MM")
    return func.strftime("%Y-%m", day)


def _day_orders() -> ColumnElement[int]:
    """Distinct purchase invoices (returns are not orders), over invoice_day."""
    return func.count(distinct(case((not_(INVOICE_DAYS.c.is_return), INVOICE_DAYS.c.invoice))))


def _day_buyers() -> ColumnElement[int]:
    """Distinct customers with a purchase (a return alone does not count), over invoice_day."""
    bought = and_(not_(INVOICE_DAYS.c.is_return), INVOICE_DAYS.c.customer_id != NO_CUSTOMER)
    return func.count(distinct(case((bought, INVOICE_DAYS.c.customer_id))))


def _day_window(since: date | None, until: date | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(INVOICE_DAYS.c.day >= since)
    if until is not None:
        conditions.append(INVOICE_DAYS.c.day <= until)
    return conditions


# --- data state -------------------------------------------------------------------------------

def data_version(*, engine: Engine) -> str:
    """Changes whenever a file is loaded or a run is published: part of every dashboard cache
    key."""
    # Lines are only ever appended (ingest never deletes), so the largest id tells them apart,
    # from an index, never a table scan. The count of loaded files (one row per file, written
    # in its load's transaction) also changes when the largest id does not: a customers-only
    # file, or on PostgreSQL a load that commits after a later-numbered one (its sequence hands
    # out ids before either commits).
    statement = select(
        select(func.max(LINES.c.id)).scalar_subquery(),
        select(func.count()).select_from(SOURCE_FILES).scalar_subquery(),
        published_run_query().with_only_columns(RUNS.c.id).scalar_subquery(),
    )
    with engine.connect() as connection:
        row = connection.execute(statement).one()
    return "-".join(str(value) for value in row)


def data_span(*, engine: Engine) -> tuple[date, date] | None:
    """First and last transaction dates, or None when nothing is loaded."""
    with engine.connect() as connection:
        first, last = connection.execute(span_statement()).one()
    if first is None:
        return None
    return pd.Timestamp(first).date(), pd.Timestamp(last).date()


def span_statement() -> Select[tuple[Any, Any]]:
    """min(ts) and max(ts) as two subqueries: each is read off the end of the lines' index on
    ts. As one SELECT of both aggregates SQLite scanned the whole index (0.6 s at 10 M lines
    with the file cached, 7.5 s with it not), and every page asks for the span."""
    return select(select(func.min(LINES.c.ts)).scalar_subquery(),
                  select(func.max(LINES.c.ts)).scalar_subquery())


# --- sales ------------------------------------------------------------------------------------

def kpis(*, engine: Engine, since: date | None = None,
         until: date | None = None) -> dict[str, float]:
    """Net revenue, orders, customers with a purchase, average order value, lines."""
    statement = select(
        func.coalesce(func.sum(INVOICE_DAYS.c.amount), 0.0), _day_orders(), _day_buyers(),
        func.coalesce(func.sum(INVOICE_DAYS.c.lines), 0),
    ).where(*_day_window(since, until))
    with engine.connect() as connection:
        revenue, orders, customers, lines = connection.execute(statement).one()
    revenue = float(revenue or 0.0)
    return {
        "revenue": revenue,
        "orders": int(orders or 0),
        "customers": int(customers or 0),
        "aov": revenue / orders if orders else 0.0,
        "lines": int(lines or 0),
    }


def new_customers_by_month(*, engine: Engine) -> pd.DataFrame:
    """Per month (YYYY-MM): new_customers, the customers whose first purchase ever it holds.

    It reads every customer's first purchase day whatever the window, so callers showing
    several windows compute it once and pass it to monthly_trends."""
    firsts = (
        select(INVOICE_DAYS.c.customer_id, func.min(INVOICE_DAYS.c.day).label("first_day"))
        .where(INVOICE_DAYS.c.customer_id != NO_CUSTOMER, not_(INVOICE_DAYS.c.is_return))
        .group_by(INVOICE_DAYS.c.customer_id)
        .subquery()
    )
    first_month = _month(engine, firsts.c.first_day).label("month")
    new = select(first_month, func.count().label("new_customers")).group_by(first_month)
    return read_frame(engine, new)


def monthly_trends(*, engine: Engine, since: date | None = None, until: date | None = None,
                   new_customers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per month: revenue, orders, active_customers, new_customers (first purchase ever).

    new_customers: new_customers_by_month's frame when the caller has it already."""
    month = _month(engine, INVOICE_DAYS.c.day).label("month")
    sales = (
        select(month, func.sum(INVOICE_DAYS.c.amount).label("revenue"),
               _day_orders().label("orders"), _day_buyers().label("active_customers"))
        .where(*_day_window(since, until))
        .group_by(month)
        .order_by(month)
    )
    frame = read_frame(engine, sales)
    new_frame = (new_customers if new_customers is not None
                 else new_customers_by_month(engine=engine))
    if frame.empty:
        return pd.DataFrame(columns=["month", "revenue", "orders", "active_customers",
                                     "new_customers"])
    frame = frame.merge(new_frame, on="month", how="left")
    frame["new_customers"] = frame["new_customers"].fillna(0).astype(int)
    frame["revenue"] = frame["revenue"].astype(float)
    frame["orders"] = frame["orders"].astype(int)
    frame["active_customers"] = frame["active_customers"].astype(int)
    return frame.reset_index(drop=True)


# --- products ---------------------------------------------------------------------------------

def window_products(*, engine: Engine, non_product_codes: Sequence[str],
                    since: date | None = None, until: date | None = None,
                    copy: ColumnarCopy | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per product: description, revenue, quantity, buying customers; per customer and
    product: revenue, quantity, purchase lines) of the window, from one column-wise read of its
    product lines grouped on integer codes (numpy): several times faster than two GROUP BYs in
    SQLite on a window of a million lines, and a fraction of the memory Arrow's hash grouping
    keeps (docs/benchmarks.md). Customer ids and stock codes of the second frame are
    categorical. copy: the columnar copy to read the lines from (engine.store.columnar)."""
    from engine.store import columnar
    from engine.store.lines_read import product_lines

    if copy is not None:
        table = columnar.product_lines(copy, non_product_codes=non_product_codes, since=since,
                                       until=until, coded=True)
    else:
        table = product_lines(engine=engine, non_product_codes=non_product_codes, since=since,
                              until=until)
    customer, customer_ids = _codes(table.column("customer_id"))
    product, stock_codes = _codes(table.column("stock_code"))
    amount = table.column("amount").to_numpy()
    quantity = table.column("quantity").to_numpy()
    bought = ~table.column("is_return").to_numpy(zero_copy_only=False)
    del table
    width = max(len(stock_codes), 1)
    n_products = len(stock_codes)
    known = customer >= 0
    pairs, pair = distinct_inverse(customer[known] * width + product[known])
    purchases = np.bincount(pair, weights=bought[known], minlength=len(pairs)).astype(int)
    products = pd.DataFrame({
        "stock_code": stock_codes,
        "revenue": np.bincount(product, weights=amount, minlength=n_products),
        "quantity": np.bincount(product, weights=quantity, minlength=n_products),
        # Buying customers: the pairs with a purchase line among them.
        "customers": np.bincount(pairs[purchases > 0] % width, minlength=n_products).astype(int),
    })[np.bincount(product, minlength=n_products) > 0]  # a file's dictionary may hold more
    products = products.sort_values("stock_code").reset_index(drop=True)
    per_pair = pd.DataFrame({
        "customer_id": pd.Categorical.from_codes(pairs // width,
                                                 categories=pd.Index(customer_ids)),
        "stock_code": pd.Categorical.from_codes(pairs % width,
                                                categories=pd.Index(stock_codes)),
        "revenue": np.bincount(pair, weights=amount[known], minlength=len(pairs)),
        "quantity": np.bincount(pair, weights=quantity[known], minlength=len(pairs)),
        "purchases": purchases,
    })
    return with_descriptions(engine=engine, frame=products), per_pair


def _codes(values: Any) -> tuple[np.ndarray, list[str]]:
    """(int64 code per value, -1 for null; the distinct values, some perhaps unused) of an
    Arrow string column, or of a dictionary column whose chunks share one dictionary (taken as
    it is: encoding it again took 0.08 s of a 4-month window at 10 M lines)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    combined = values.combine_chunks()
    encoded = (combined if pa.types.is_dictionary(combined.type)
               else pc.dictionary_encode(combined))
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False).astype(str).tolist()


def product_names(*, engine: Engine, stock_codes: Sequence[str]) -> dict[str, str]:
    """Description per stock code (the product table's, kept current by ingest)."""
    codes = sorted({code for code in stock_codes if code})
    names: dict[str, str] = {}
    with engine.connect() as connection:
        for chunk in in_chunks(codes):
            statement = select(PRODUCTS.c.stock_code, PRODUCTS.c.description).where(
                PRODUCTS.c.stock_code.in_(chunk))
            names.update({code: text for code, text in connection.execute(statement) if text})
    return names


def with_descriptions(*, engine: Engine, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a description column after its stock_code column (a copy)."""
    names = product_names(engine=engine, stock_codes=frame["stock_code"].tolist())
    described = frame.copy()
    position = list(described.columns).index("stock_code") + 1
    described.insert(position, "description", described["stock_code"].map(names))
    return described
