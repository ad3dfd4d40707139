"""Customers: the one-customer look-up of the dashboard, the customers frame a run reads, and
what decides whether a number may get an SMS (consent, opt-outs, a number Twilio refused).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Select, desc, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from engine.columns import CUSTOMER_COLUMNS, SEGMENT_COLUMNS
from engine.phones import mask_phone
from engine.store.db import database_error
from engine.store.tables import CUSTOMERS, LINES, OPT_OUTS, RECOMMENDATIONS, RESULTS, read_frame

# --- the customers frame ------------------------------------------------------------------------


def load_customers(*, engine: Engine) -> pd.DataFrame:
    """The customers frame: customer_id, first_name, phone, phone_status, signup_date
    (datetime64[ns], NaT when unknown), country, sms_consent (bool), timezone."""
    query = select(*[CUSTOMERS.c[name] for name in CUSTOMER_COLUMNS]) \
        .order_by(CUSTOMERS.c.customer_id)
    try:
        with engine.connect() as connection:
            frame = pd.read_sql(query, connection)
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None
    frame = frame.reindex(columns=CUSTOMER_COLUMNS)
    for column in ("customer_id", "first_name", "phone", "phone_status", "country", "timezone"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["signup_date"] = pd.to_datetime(frame["signup_date"]).astype("datetime64[ns]")
    frame["sms_consent"] = frame["sms_consent"].fillna(False).astype(bool)
    return frame


# --- one customer -----------------------------------------------------------------------------

def customer_profile(*, engine: Engine, customer_id: str,
                     run_id: int | None) -> dict[str, Any] | None:
    """Customer master data (phone masked) with the run's RFM row; None when unknown."""
    with engine.connect() as connection:
        customer = connection.execute(
            select(CUSTOMERS, OPT_OUTS.c.source.label("opt_out"))
            .select_from(_with_opt_out()).where(CUSTOMERS.c.customer_id == customer_id)
        ).mappings().first()
        result = None
        if run_id is not None:
            result = connection.execute(
                select(RESULTS).where(RESULTS.c.run_id == run_id,
                                      RESULTS.c.customer_id == customer_id)).mappings().first()
        has_lines = connection.execute(
            select(LINES.c.id).where(LINES.c.customer_id == customer_id).limit(1)
        ).first() is not None
    if customer is None and result is None and not has_lines:
        return None
    profile: dict[str, Any] = {"customer_id": customer_id}
    if customer is not None:
        profile.update({key: customer[key] for key in ("first_name", "country", "signup_date",
                                                      "sms_consent", "phone_status")})
        profile["phone"] = mask_phone(customer["phone"])
        profile["opt_out"] = customer["opt_out"]
    if result is not None:
        profile.update({key: result[key] for key in SEGMENT_COLUMNS + ["rfm_grid_segment"]})
    return profile


def customer_contact(*, engine: Engine, customer_id: str) -> tuple[bool, str, str | None]:
    """(SMS consent, phone status, how the number opted out or None): what decides whether an
    offer may go to the customer, read fresh (webhooks and the sender change it between runs).
    """
    with engine.connect() as connection:
        row = connection.execute(_contact(customer_id)).first()
    if row is None:
        return False, "unknown", None
    return bool(row[0]), str(row[1] or "unknown"), row[2]


def _contact(customer_id: str) -> Select[Any]:
    """The customer's SMS consent, phone status and opt-out source (None if not opted out)."""
    return (select(CUSTOMERS.c.sms_consent, CUSTOMERS.c.phone_status, OPT_OUTS.c.source)
            .select_from(_with_opt_out()).where(CUSTOMERS.c.customer_id == customer_id))


def _with_opt_out() -> Any:
    """Customers joined to the opt-out of their number, if it is opted out."""
    return CUSTOMERS.outerjoin(OPT_OUTS, (OPT_OUTS.c.phone == CUSTOMERS.c.phone)
                               & OPT_OUTS.c.opted_out.is_(True))


def customer_purchases(*, engine: Engine, customer_id: str, limit: int = 50) -> pd.DataFrame:
    statement = (
        select(LINES.c.ts, LINES.c.invoice, LINES.c.stock_code, LINES.c.description,
               LINES.c.quantity, LINES.c.unit_price, LINES.c.amount)
        .where(LINES.c.customer_id == customer_id)
        .order_by(desc(LINES.c.ts), LINES.c.id)
        .limit(limit)
    )
    return read_frame(engine, statement)


def customer_recommendations(*, engine: Engine, run_id: int, customer_id: str) -> pd.DataFrame:
    statement = (
        select(RECOMMENDATIONS.c.rank, RECOMMENDATIONS.c.stock_code,
               RECOMMENDATIONS.c.description, RECOMMENDATIONS.c.score, RECOMMENDATIONS.c.reason)
        .where(RECOMMENDATIONS.c.run_id == run_id, RECOMMENDATIONS.c.customer_id == customer_id)
        .order_by(RECOMMENDATIONS.c.rank)
    )
    return read_frame(engine, statement)


def sample_customers(*, engine: Engine, run_id: int, limit: int = 20) -> list[str]:
    """Customers of a run with the highest monetary value (suggestions for the look-up)."""
    statement = (select(RESULTS.c.customer_id).where(RESULTS.c.run_id == run_id)
                 .order_by(desc(RESULTS.c.monetary), RESULTS.c.customer_id).limit(limit))
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(statement)]


# --- opt-outs and refused numbers ---------------------------------------------------------------

def opted_out_phones(*, engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(
            select(OPT_OUTS.c.phone).where(OPT_OUTS.c.opted_out.is_(True))).scalars())


def write_opt_out(*, connection: Connection, phone: str, opted_out: bool, source: str,
                  now: datetime) -> None:
    """Upsert the number's opt-out state in the caller's transaction; a state written later than
    `now` (a newer message handled first) is left alone."""
    values = {"opted_out": opted_out, "source": source, "updated_at": now}
    changed = connection.execute(
        update(OPT_OUTS).where(OPT_OUTS.c.phone == phone, OPT_OUTS.c.updated_at <= now)
        .values(**values)).rowcount
    if not changed and connection.execute(
            select(OPT_OUTS.c.phone).where(OPT_OUTS.c.phone == phone)).first() is None:
        connection.execute(insert(OPT_OUTS).values(phone=phone, **values))


def set_opt_out(*, engine: Engine, phone: str, opted_out: bool, source: str,
                now: datetime) -> None:
    """Upsert the number's opt-out state (STOP keyword, START keyword, provider error 21610);
    an older message never overrides a newer state."""
    for _attempt in range(2):  # a concurrent insert of the same phone: retry as an update
        try:
            with engine.begin() as connection:
                write_opt_out(connection=connection, phone=phone, opted_out=opted_out,
                              source=source, now=now)
            return
        except IntegrityError:
            continue


def mark_phone_invalid(*, engine: Engine, customer_id: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(CUSTOMERS).where(CUSTOMERS.c.customer_id == customer_id)
                           .values(phone_status="invalid"))
