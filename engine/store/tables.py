"""The table handles every store module writes its SQL against, under one naming scheme (the
plural of what a row is), and the small helpers their readers share.

Column contracts (which columns, in which order, a frame or export has) are in engine.columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, Table

from engine import models
from engine.dates import window_bounds

if TYPE_CHECKING:
    import pandas as pd


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


SOURCE_FILES = _table(models.SourceFile)
LINES = _table(models.TransactionLine)
INVOICE_DAYS = _table(models.InvoiceDay)
SUMMARY_SETTINGS = _table(models.SummarySetting)
PRODUCTS = _table(models.Product)
CUSTOMERS = _table(models.Customer)
RUNS = _table(models.SegmentationRun)
RESULTS = _table(models.CustomerResult)
PROFILES = _table(models.ClusterProfile)
RUN_MONTHS = _table(models.RunMonth)
RUN_PRODUCTS = _table(models.RunProduct)
RUN_GROUP_PRODUCTS = _table(models.RunGroupProduct)
RULES = _table(models.AssociationRule)
RECOMMENDATIONS = _table(models.Recommendation)
MESSAGES = _table(models.OfferMessage)
EARLY_STATUSES = _table(models.OfferEarlyStatus)
SKIPS = _table(models.OfferSkip)
OPT_OUTS = _table(models.OptOut)
JOBS = _table(models.JobHistory)
LOCKS = _table(models.JobLock)
USERS = _table(models.DashboardUser)
CUSTOMER_CLV = _table(models.CustomerClv)
CLV_FIT = _table(models.ClvFit)
INBOUND = _table(models.InboundMessage)


def read_frame(engine: Engine | Connection, statement: Select[Any],
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The statement's rows as a DataFrame (its own column names unless `columns` are given)."""
    if isinstance(engine, Connection):
        return _frame(engine, statement, columns)
    with engine.connect() as connection:
        return _frame(connection, statement, columns)


def _frame(connection: Connection, statement: Select[Any],
           columns: Sequence[str] | None) -> pd.DataFrame:
    import pandas as pd  # here, not at the top: the listing commands read rows, never frames

    result = connection.execute(statement)
    rows = result.fetchall()
    names = list(columns) if columns is not None else list(result.keys())
    return pd.DataFrame([tuple(row) for row in rows], columns=names)


def in_window(since: date | None, until: date | None) -> list[ColumnElement[bool]]:
    """Conditions keeping the lines of the window [since, until] (engine.dates' rule)."""
    start, end = window_bounds(since, until)
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(LINES.c.ts >= start)
    if end is not None:
        conditions.append(LINES.c.ts < end)
    return conditions


# Values per `IN (...)` list: well under SQLite's bound-parameter limit on every version.
IN_CHUNK = 500


def in_chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    """The values in slices short enough for one `IN (...)` list each."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def text_widths(table: Table, names: Iterable[str]) -> dict[str, int]:
    """The declared width of each of these text columns that has one (VARCHAR(n))."""
    return {name: length for name in names
            if (length := getattr(table.c[name].type, "length", None))}
