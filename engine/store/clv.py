"""A run's predicted customer value: customer_clv rows and the clv_fit row (parameters,
backtest, notes). Written inside the run's one results transaction (engine.store.runs), read by
`segmint clv`, `segmint export clv`, the dashboard and the offers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Connection, Engine, delete, insert, select

from engine.store.tables import CLV_FIT, CUSTOMER_CLV, read_frame

if TYPE_CHECKING:
    from engine.clv import ClvResult

STORED_COLUMNS = [c.name for c in CUSTOMER_CLV.columns if c.name != "run_id"]


def write(*, connection: Connection, run_id: int, clv: ClvResult) -> None:
    """The run's CLV rows and its fit row, in the caller's transaction."""
    from engine.store.results import _insert

    if clv.customers is not None and len(clv.customers):
        _insert(connection, CUSTOMER_CLV, STORED_COLUMNS, clv.customers, run_id)
    connection.execute(insert(CLV_FIT).values(run_id=run_id, time_unit=clv.time_unit,
                                              params=clv.params()))


def remove(*, connection: Connection, run_id: int) -> None:
    for table in (CUSTOMER_CLV, CLV_FIT):
        connection.execute(delete(table).where(table.c.run_id == run_id))


def read_fit(*, engine: Engine, run_id: int) -> dict[str, Any] | None:
    """The run's clv_fit params (time_unit, bgnbd, gamma_gamma, backtest, notes), or None for a
    run made before CLV existed or with CLV disabled."""
    with engine.connect() as connection:
        row = connection.execute(select(CLV_FIT.c.params)
                                 .where(CLV_FIT.c.run_id == run_id)).first()
    return None if row is None else dict(row[0])


def read_customers(*, engine: Engine, run_id: int,
                   customer_id: str | None = None) -> pd.DataFrame:
    """The run's customer_clv rows (STORED_COLUMNS), by customer_id; one customer's if given."""
    query = select(*[CUSTOMER_CLV.c[name] for name in STORED_COLUMNS]) \
        .where(CUSTOMER_CLV.c.run_id == run_id).order_by(CUSTOMER_CLV.c.customer_id)
    if customer_id is not None:
        query = query.where(CUSTOMER_CLV.c.customer_id == customer_id)
    return read_frame(engine, query, STORED_COLUMNS)
