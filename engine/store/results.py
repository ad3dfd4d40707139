"""A run's results: customer rows, cluster profiles, association rules, recommendations, the sales
figures (KPIs in the run's diagnostics, months and products in their tables); written
with the run's 'succeeded' status in one transaction, read back for the exports and the
dashboard, and the class transitions between two runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, desc, select, update
from sqlalchemy.exc import SQLAlchemyError

from engine.classes import class_transitions
from engine.columns import RECOMMENDATION_COLUMNS, RULE_COLUMNS, SEGMENT_COLUMNS, format_items
from engine.dates import utc_now
from engine.sales_figures import (
    GROUP_PRODUCT_COLUMNS,
    MONTH_COLUMNS,
    PRODUCT_COLUMNS,
    SalesFigures,
    sort_groups,
)
from engine.store.db import database_error
from engine.store.runs import SUCCEEDED
from engine.store.tables import (
    PROFILES,
    RECOMMENDATIONS,
    RESULTS,
    RULES,
    RUN_GROUP_PRODUCTS,
    RUN_MONTHS,
    RUN_PRODUCTS,
    RUNS,
    read_frame,
)
from engine.values import plain

if TYPE_CHECKING:
    from engine.pipeline import RunResult

BATCH = 10_000


# --- writing ------------------------------------------------------------------------------------

def _column_values(series: pd.Series) -> list[Any]:
    """A column as DBAPI values: Python scalars, NaN/inf/NA as None (column-wise, no per-cell
    work for numeric columns)."""
    numpy_dtype = isinstance(series.dtype, np.dtype)
    if numpy_dtype and series.dtype.kind in "iub":
        return series.tolist()
    if numpy_dtype and series.dtype.kind == "f":
        values = series.to_numpy(dtype=float)
        finite = np.isfinite(values)
        listed = values.tolist()
        if finite.all():
            return listed
        return [value if ok else None for value, ok in zip(listed, finite.tolist(), strict=True)]
    return [value if type(value) is str else plain(value) for value in series.tolist()]


def _rows(frame: pd.DataFrame, columns: list[str], run_id: int) -> list[tuple[Any, ...]]:
    """One tuple per row: run_id, then ``columns`` in order."""
    return list(zip(repeat(run_id, len(frame)), *[_column_values(frame[name]) for name in columns],
                    strict=True))


def _insert(connection: Connection, table: Table, columns: list[str], frame: pd.DataFrame,
            run_id: int) -> None:
    """Bulk insert of the frame's ``columns`` (run_id first) inside the caller's transaction.

    Raw DB-API on purpose: COPY on PostgreSQL (psycopg) and the driver's executemany elsewhere
    write a run's results several times faster than SQLAlchemy Core's insert (bench/). Rows
    become plain tuples one batch at a time, so a large result never exists twice in memory as
    Python objects."""
    if frame.empty:
        return
    preparer = connection.dialect.identifier_preparer
    names = ", ".join(preparer.quote(name) for name in ["run_id", *columns])
    target = preparer.format_table(table)
    batches = (_rows(frame.iloc[start:start + BATCH], columns, run_id)
               for start in range(0, len(frame), BATCH))
    driver = connection.connection.driver_connection
    if connection.dialect.driver == "psycopg" and driver is not None:
        with driver.cursor() as cursor, \
                cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
            for rows in batches:
                for row in rows:
                    copy.write_row(row)
        return
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {target} ({names}) VALUES ({', '.join([marker] * (len(columns) + 1))})"
    for rows in batches:
        connection.exec_driver_sql(sql, rows)


def save_results(*, engine: Engine, run_id: int, result: RunResult) -> None:
    """Every result of the run and its 'succeeded' status, in one transaction."""
    tables: list[tuple[Table, list[str], pd.DataFrame]] = [
        (table, [c.name for c in table.columns if c.name != "run_id"], frame)
        for table, frame in ((RESULTS, result.segments), (PROFILES, result.profiles))]
    if result.rules is not None and len(result.rules):
        frame = result.rules.assign(antecedents=result.rules["antecedents"].map(format_items),
                                    consequents=result.rules["consequents"].map(format_items))
        tables.append((RULES, RULE_COLUMNS, frame))
    if result.recommendations is not None and len(result.recommendations):
        tables.append((RECOMMENDATIONS, RECOMMENDATION_COLUMNS, result.recommendations))
    diagnostics = result.diagnostics
    if result.sales is not None:
        tables.append((RUN_MONTHS, MONTH_COLUMNS, result.sales.months))
        if result.sales.products is not None:
            tables.append((RUN_PRODUCTS, PRODUCT_COLUMNS, result.sales.products))
        if result.sales.groups is not None:
            tables.append((RUN_GROUP_PRODUCTS, GROUP_PRODUCT_COLUMNS, result.sales.groups))
        diagnostics = {**diagnostics, "sales": {
            "totals": result.sales.totals, "products": result.sales.products is not None,
            "groups": result.sales.groups is not None,
            "non_product_codes": sorted(result.sales.non_product_codes)}}
    try:
        with engine.begin() as connection:
            for table, columns, frame in tables:
                _insert(connection, table, columns, frame, run_id)
            if result.clv is not None:
                from engine.store import clv as clv_store

                clv_store.write(connection=connection, run_id=run_id, clv=result.clv)
            connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(
                status=SUCCEEDED, finished_at=utc_now(), as_of=result.as_of, k=result.k,
                k_mode=result.k_mode, seed=result.seed, n_customers=result.n_customers,
                n_lines=result.n_lines, diagnostics=diagnostics, error=None))
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None
    except engine.dialect.loaded_dbapi.Error as exc:  # from COPY, on the driver's own cursor
        raise database_error(engine, exc) from None


# --- reading ------------------------------------------------------------------------------------

def _read(engine: Engine | Connection, table: Table, run_id: int,
          order: Iterable[str]) -> pd.DataFrame:
    columns = [c for c in table.columns if c.name not in ("run_id", "id")]
    query = select(*columns).where(table.c.run_id == run_id) \
        .order_by(*[table.c[name] for name in order])
    return read_frame(engine, query, [c.name for c in columns])


def read_segments(*, engine: Engine, run_id: int) -> pd.DataFrame:
    return _read(engine, RESULTS, run_id, ["customer_id"])


def read_profiles(*, engine: Engine, run_id: int) -> pd.DataFrame:
    """The run's cluster profiles by cluster number."""
    return _read(engine, PROFILES, run_id, ["cluster"])


def read_rules(*, engine: Engine, run_id: int) -> pd.DataFrame:
    """Rules with item sets as ';'-joined stock codes (engine.columns.format_items); cluster
    None = all customers."""
    frame = _read(engine, RULES, run_id, ["id"])
    frame["cluster"] = frame["cluster"].astype(object).where(frame["cluster"].notna(), None)
    return frame


def read_recommendations(*, engine: Engine, run_id: int) -> pd.DataFrame:
    return _read(engine, RECOMMENDATIONS, run_id, ["customer_id", "rank"])


def read_sales(*, engine: Engine, run_id: int) -> SalesFigures | None:
    """The run's sales figures (engine.sales_figures), None for a run published without them
    (before migration 0008)."""
    with engine.connect() as connection:
        diagnostics = connection.execute(
            select(RUNS.c.diagnostics).where(RUNS.c.id == run_id)).scalar_one_or_none()
        stored = (diagnostics or {}).get("sales")
        if not stored:
            return None
        months = _read(connection, RUN_MONTHS, run_id, ["month"])
        products = (_read(connection, RUN_PRODUCTS, run_id, ["stock_code"])
                    if stored["products"] else None)
        groups = (_read(connection, RUN_GROUP_PRODUCTS, run_id,
                        ["grouping", "group", "stock_code"]) if stored["groups"] else None)
    months = months.astype({"revenue": float, "orders": np.int64,
                            "active_customers": np.int64, "new_customers": np.int64})
    if products is not None:
        products = products.astype({"revenue": float, "quantity": float, "customers": np.int64})
    if groups is not None:
        groups = sort_groups(groups.astype({"revenue": float, "customers": np.int64}))
    return SalesFigures(totals=stored["totals"], months=months[MONTH_COLUMNS], products=products,
                        groups=groups, non_product_codes=tuple(stored["non_product_codes"]))


def read_classes(*, engine: Engine, run_id: int) -> pd.DataFrame:
    """customer_id and customer_class of a run."""
    query = select(RESULTS.c.customer_id, RESULTS.c.customer_class) \
        .where(RESULTS.c.run_id == run_id)
    return read_frame(engine, query, ["customer_id", "customer_class"])


def customer_results(*, engine: Engine, run_id: int, classes: Sequence[str] | None = None,
                     segments: Sequence[str] | None = None) -> pd.DataFrame:
    """A run's per-customer rows in `export segments` column order, optionally filtered."""
    statement = select(*(RESULTS.c[name] for name in SEGMENT_COLUMNS)).where(
        RESULTS.c.run_id == run_id)
    if classes:
        statement = statement.where(RESULTS.c.customer_class.in_(list(classes)))
    if segments:
        statement = statement.where(RESULTS.c.rfm_segment.in_(list(segments)))
    return read_frame(engine, statement.order_by(RESULTS.c.customer_id), SEGMENT_COLUMNS)


def cluster_profiles(*, engine: Engine, run_id: int) -> pd.DataFrame:
    """The run's cluster profiles, largest revenue share first (the dashboard's order)."""
    statement = select(PROFILES).where(PROFILES.c.run_id == run_id).order_by(
        desc(PROFILES.c.revenue_share), PROFILES.c.cluster)
    return read_frame(engine, statement)


def rules_by_lift(*, engine: Engine, run_id: int) -> pd.DataFrame:
    """A run's association rules (cluster None = mined over all customers), best lift first."""
    statement = select(*(RULES.c[name] for name in RULE_COLUMNS)).where(RULES.c.run_id == run_id)
    return read_frame(engine, statement.order_by(desc(RULES.c.lift), RULES.c.id))


def transitions(*, engine: Engine, from_run: int, to_run: int) -> pd.DataFrame:
    """Customers moving between classes from one run to another (engine.classes'
    class_transitions: the one labelling, for the export and the dashboard)."""
    return class_transitions(read_classes(engine=engine, run_id=from_run),
                             read_classes(engine=engine, run_id=to_run))
