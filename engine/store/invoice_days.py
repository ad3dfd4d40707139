"""invoice_day: the transaction lines summed per day, invoice, customer, return flag and product
flag, so a dashboard window reads a few hundred thousand rows instead of millions of lines.

Kept in step with the lines by the writer: every load adds the lines it inserted (and only
those, so a duplicate line skipped by the load adds nothing) in the load's own transaction, so a
load that fails or is killed leaves the summary as it was. Migration 0007 builds it from the
lines already stored. Every figure the dashboard's windows show is a sum or a distinct count
over these rows, equal to the same figure over the lines (whole UTC days, engine.dates' rule):

- revenue = sum(amount); orders = distinct purchase (not is_return) invoices; customers =
  distinct customer_id of purchase rows; lines = sum(lines);
- per customer (rows with a customer and is_product): the last and first purchase day, the
  distinct purchase invoices and the net value, which is all RFM and the six classes read
  (as_pseudo_lines).

is_product depends on the non-product codes. The codes the rows were written with are recorded
(summary_setting 'non_product_codes'); a reader whose settings name other codes reads the lines
instead (codes_match), and the next load rebuilds the summary with its own codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Date,
    Engine,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from engine.dates import window_end
from engine.store.db import database_error
from engine.store.tables import INVOICE_DAYS, LINES, SUMMARY_SETTINGS

CODES_SETTING = "non_product_codes"
NO_CUSTOMER = ""  # invoice_day.customer_id of lines without a customer
KEY = ("day", "invoice", "customer_id", "is_return", "is_product")
SUMS = ("lines", "amount", "net", "quantity")


def _day(connection: Connection | Engine) -> ColumnElement[Any]:
    if connection.dialect.name == "postgresql":
        return cast(func.timezone("UTC", LINES.c.ts), Date)
    return func.date(LINES.c.ts)


def _is_product(codes: Sequence[str]) -> ColumnElement[bool]:
    """Not one of the non-product codes (a line without a stock code counts, as in RFM)."""
    if not codes:
        return cast(literal(True), Boolean)
    condition = or_(LINES.c.stock_code.is_(None), LINES.c.stock_code.not_in(sorted(codes)))
    return cast(case((condition, True), else_=False), Boolean)


def _summed_lines(connection: Connection, codes: Sequence[str],
                  where: Sequence[ColumnElement[bool]]) -> Any:
    day = _day(connection).label("day")
    customer = func.coalesce(LINES.c.customer_id, literal(NO_CUSTOMER)).label("customer_id")
    is_product = _is_product(codes).label("is_product")
    return (select(day, LINES.c.invoice, customer, LINES.c.is_return, is_product,
                   func.count().label("lines"), func.sum(LINES.c.amount).label("amount"),
                   func.sum(case((LINES.c.is_return, -func.abs(LINES.c.amount)),
                                 else_=LINES.c.amount)).label("net"),
                   func.sum(LINES.c.quantity).label("quantity"))
            .where(*where)
            .group_by(day, LINES.c.invoice, customer, LINES.c.is_return, is_product))


def stored_codes(connection: Connection) -> list[str] | None:
    """The non-product codes the summary was built with (None: never built)."""
    value = connection.execute(select(SUMMARY_SETTINGS.c.value).where(
        SUMMARY_SETTINGS.c.name == CODES_SETTING)).scalar_one_or_none()
    return None if value is None else [str(code) for code in value]


def add_lines(connection: Connection, *, source_file_id: int, after_id: int,
              codes: Sequence[str] | None) -> None:
    """Add to the summary the lines a load of source_file_id has just inserted (ids above
    after_id, the largest id before it), inside the load's transaction. When the summary was
    built with other non-product codes, it is rebuilt from every line with these (codes None:
    the summary's own, or the default ones on a summary never built)."""
    stored = stored_codes(connection)
    if codes is None:
        from engine.settings import IngestSettings

        codes = stored if stored is not None else IngestSettings().non_product_codes
    wanted = sorted(set(codes))
    if stored != wanted:
        rebuild(connection, codes=wanted)
        return
    summed = _summed_lines(connection, wanted, [LINES.c.id > after_id,
                                                LINES.c.source_file_id == source_file_id])
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = module.insert(INVOICE_DAYS).from_select([*KEY, *SUMS], summed)
    statement = statement.on_conflict_do_update(
        index_elements=list(KEY),
        set_={name: INVOICE_DAYS.c[name] + statement.excluded[name] for name in SUMS})
    connection.execute(statement)


def rebuild(connection: Connection, *, codes: Sequence[str]) -> None:
    """The summary of every stored line, with these non-product codes (migration 0007, and a
    load whose settings name other codes than the summary's)."""
    wanted = sorted(set(codes))
    connection.execute(delete(INVOICE_DAYS))
    connection.execute(INVOICE_DAYS.insert().from_select([*KEY, *SUMS],
                                                         _summed_lines(connection, wanted, [])))
    connection.execute(delete(SUMMARY_SETTINGS).where(SUMMARY_SETTINGS.c.name == CODES_SETTING))
    connection.execute(SUMMARY_SETTINGS.insert().values(name=CODES_SETTING, value=wanted))


def codes_match(*, engine: Engine, codes: Sequence[str]) -> bool:
    """True when the summary was built with exactly these non-product codes."""
    try:
        with engine.connect() as connection:
            return stored_codes(connection) == sorted(set(codes))
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None


# --- the per-customer rows as lines ----------------------------------------------------------

PSEUDO_LINE_COLUMNS = ("invoice", "stock_code", "amount", "ts", "customer_id", "is_return")


def customer_history(*, engine: Engine, until: date | None,
                     active_since: date | None = None) -> pd.DataFrame:
    """The summary's customer rows up to the end of `until`, as a lines frame that RFM, the
    classes and the segment KPIs read exactly as they read the lines: one line per (customer,
    invoice, day, return flag) of product lines, amount = its net value, ts = the day (midnight
    UTC), stock_code None (a product). Every figure those functions compute from whole days,
    distinct invoices and sums of net value is the same; only the float sums' order differs.

    active_since: only the customers with a row (a purchase or a return) in [active_since,
    until], all of their rows up to until: a window's customers and the history their classes
    and KPIs need, without the others'.
    """
    from engine.store.lines_read import read_arrow

    end = window_end(until)
    where = "is_product AND customer_id <> ''"
    sqlite_where = "is_product = 1 AND customer_id <> ''"
    bound = f" AND day < '{end.isoformat()}'" if end is not None else ""
    if active_since is not None:
        active = (f" AND {{plus}}customer_id IN (SELECT customer_id FROM invoice_day WHERE "
                  f"day >= '{active_since.isoformat()}'{bound} AND {{where}})")
        where += active.format(plus="", where="is_product")
        # '+' keeps SQLite on its scan of the day range (the table's own order): through the
        # customer index it looks every row up at random, 20 times slower on 10 M lines.
        sqlite_where += active.format(plus="+", where="is_product = 1")
    columns = "invoice, customer_id, CAST(is_return AS INTEGER) AS is_return"
    table = read_arrow(
        engine,
        sqlite_sql=(f"SELECT {columns}, CAST(net AS REAL) AS net, day FROM invoice_day "
                    f"WHERE {sqlite_where}{bound}"),
        postgres_sql=(f"SELECT {columns}, CAST(net AS float8) AS net, "
                      f"to_char(day, 'YYYY-MM-DD') AS day FROM invoice_day "
                      f"WHERE {where}{bound}"),
        types={"invoice": pa.string(), "customer_id": pa.string(), "is_return": pa.int64(),
               "net": pa.float64(), "day": pa.string()})
    days = pc.strptime(table.column("day"), format="%Y-%m-%d", unit="s")
    return as_pseudo_lines(table.column("invoice"), table.column("customer_id"),
                           pc.not_equal(table.column("is_return"), 0), table.column("net"), days)


def _sorted_dictionary(values: pa.Array) -> pa.DictionaryArray:
    """values (text, or already dictionary-encoded; never null) as a dictionary array whose
    dictionary is the distinct values the rows use, sorted."""
    encoded = pc.dictionary_encode(values)  # a dictionary array stays as it is
    indices = encoded.indices.to_numpy()
    used = np.zeros(len(encoded.dictionary), dtype=bool)
    used[indices] = True
    kept = np.flatnonzero(used)
    distinct = encoded.dictionary.take(pa.array(kept))
    order = pc.array_sort_indices(distinct).to_numpy()
    position = np.full(len(used), -1, dtype=np.int32)  # a value's place among the sorted
    position[kept[order]] = np.arange(len(order), dtype=np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(position[indices]), distinct.take(order))


def as_pseudo_lines(invoice: Any, customer_id: Any, is_return: Any, net: Any,
                    day: Any) -> pd.DataFrame:
    """Customer rows (Arrow columns; is_return bool, day a timestamp at midnight UTC) as the
    lines frame of customer_history. The invoice is an integer code per distinct invoice text,
    or, given integers (the columnar copy's invoice keys), those (what RFM, the classes and the
    KPIs do with it is tell invoices apart): a window's million rows then hold no invoice
    strings, and each reader's factorisation of them is cheap. The
    customer id is categorical (its categories the distinct ids, unordered) and the stock code a
    categorical with no category, null on every row (these rows stand for product lines): the
    readers' null checks, non-product filters and customer coding then work on integer codes,
    not on a million Python strings."""
    if isinstance(invoice, pa.ChunkedArray):  # one dictionary for every row
        invoice = invoice.combine_chunks()
    if isinstance(customer_id, pa.ChunkedArray):
        customer_id = customer_id.combine_chunks()
    keyed = pa.types.is_integer(invoice.type)
    frame = pa.table({
        "invoice": invoice if keyed else pc.cast(pc.dictionary_encode(invoice).indices,
                                                 pa.int64()),
        "amount": net,
        "ts": pc.cast(day, pa.timestamp("ns")),
        "customer_id": _sorted_dictionary(customer_id),
        "is_return": is_return,
    }).to_pandas(self_destruct=True, split_blocks=True,
                 # Keys with a null among them as pandas' nullable integers: as floats, keys
                 # above 2**53 would no longer tell invoices apart.
                 types_mapper={pa.int64(): pd.Int64Dtype()}.get if keyed and invoice.null_count
                 else None)
    no_code = pd.Categorical.from_codes(np.full(len(frame), -1, dtype=np.int8),
                                        categories=pd.Index([], dtype=object))
    frame.insert(1, "stock_code", no_code)
    frame["ts"] = frame["ts"].astype("datetime64[ns]")
    frame["is_return"] = frame["is_return"].astype(bool)
    return frame[list(PSEUDO_LINE_COLUMNS)]
