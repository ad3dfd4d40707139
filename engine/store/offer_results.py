"""SQL that reads the offer ledger for results: the Offers page's summary, the ledger as
treatment and holdout groups for the outcomes (engine/offer_outcomes.py), and the recording of
a past offer pass from a file. The sending side (targets, claims, statuses, skips) is
engine/store/offers.py; both read and write the same tables (engine/store/tables.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, desc, func, insert, select

from engine.ledger import ATTEMPTED, DELIVERED, DRY_RUN_PREFIX, NOT_DELIVERED, offer_key
from engine.ledger import LedgerStatus as Status
from engine.outcomes import HOLDOUT
from engine.store.offers import ledger_statuses
from engine.store.runs import published_run_query
from engine.store.tables import (
    CUSTOMERS,
    MESSAGES,
    OPT_OUTS,
    RESULTS,
    RUNS,
    SKIPS,
    in_chunks,
    read_frame,
)

# offer_ledger's columns (the ledger as engine.outcomes reads it).
OFFER_LEDGER_COLUMNS = ["customer_id", "offer_id", "pass_id", "group", "status", "created_at",
                        "sent_at", "customer_class"]


def offer_summary(*, engine: Engine) -> dict[str, Any]:
    """Message counts by status and by offer, delivery rate, opt-outs and skip reasons."""
    by_status = read_frame(engine, select(MESSAGES.c.status, func.count().label("messages"))
                           .group_by(MESSAGES.c.status).order_by(desc("messages")))
    by_offer = read_frame(engine, select(MESSAGES.c.offer_id, MESSAGES.c.status,
                                         func.count().label("messages"))
                          .group_by(MESSAGES.c.offer_id, MESSAGES.c.status))
    skips = read_frame(engine, select(SKIPS.c.reason, func.count().label("customers"))
                       .group_by(SKIPS.c.reason).order_by(desc("customers")))
    with engine.connect() as connection:
        opted_out = connection.execute(
            select(func.count()).select_from(OPT_OUTS).where(OPT_OUTS.c.opted_out.is_(True))
        ).scalar_one()
    counts = dict(zip(by_status["status"], by_status["messages"].astype(int), strict=True))
    attempted = sum(counts.get(status, 0) for status in ATTEMPTED)
    delivered = sum(counts.get(status, 0) for status in DELIVERED)
    return {
        "by_status": by_status,
        "by_offer": by_offer,
        "skips": skips,
        "total": int(sum(counts.values())),
        "attempted": attempted,
        "delivered": delivered,
        "failed": sum(counts.get(status, 0) for status in NOT_DELIVERED),
        "dry_run": counts.get(Status.DRY_RUN, 0),
        "retry": counts.get(Status.RETRY, 0),
        "delivery_rate": delivered / attempted if attempted else None,
        "opted_out": int(opted_out),
    }


# --- outcomes: the ledger as groups (engine/offer_outcomes.py) ---------------------------------

def offer_ledger(*, engine: Engine, offer_id: str | None = None) -> pd.DataFrame:
    """The ledger's real rows (dry runs left out), oldest first, for the outcomes: customer_id,
    offer_id, pass_id, group, status, created_at, sent_at, customer_class (the customer's class
    in the run the pass used; the published run's for rows recorded without a run)."""
    published = published_run_query().with_only_columns(RUNS.c.id).scalar_subquery()
    at_pass, latest = RESULTS.alias("at_pass"), RESULTS.alias("latest")
    message = MESSAGES.c
    statement = (
        select(message.customer_id, message.offer_id, message.pass_id,
               message.assigned_group.label("group"), message.status, message.created_at,
               message.sent_at,
               func.coalesce(at_pass.c.customer_class, latest.c.customer_class)
               .label("customer_class"))
        .select_from(MESSAGES)
        .outerjoin(at_pass, and_(at_pass.c.run_id == message.run_id,
                                 at_pass.c.customer_id == message.customer_id))
        .outerjoin(latest, and_(message.run_id.is_(None), latest.c.run_id == published,
                                latest.c.customer_id == message.customer_id))
        .where(message.status != Status.DRY_RUN, ~message.offer_key.startswith(DRY_RUN_PREFIX))
        .order_by(message.id))
    if offer_id is not None:
        statement = statement.where(message.offer_id == offer_id)
    return read_frame(engine, statement, OFFER_LEDGER_COLUMNS)


def offer_ids(*, engine: Engine) -> list[str]:
    """The offers with real ledger rows, by name."""
    with engine.connect() as connection:
        return list(connection.execute(
            select(MESSAGES.c.offer_id).distinct()
            .where(MESSAGES.c.status != Status.DRY_RUN).order_by(MESSAGES.c.offer_id)).scalars())


def record_past_pass(*, engine: Engine, rows: pd.DataFrame, now: datetime) -> tuple[int, int]:
    """Record a past offer pass (the demo's offer_pass.csv: customer_id, offer_id, pass_id,
    group, decided_at as aware UTC) as ledger rows in one transaction: treatment rows as
    messages delivered at decided_at, holdout rows as holdouts assigned then. Keys already in
    the ledger are left as they are. Returns (rows added, rows already there)."""
    ids = rows["customer_id"].astype(str).tolist()
    keys = [offer_key(str(offer), customer)
            for offer, customer in zip(rows["offer_id"], ids, strict=True)]
    phones: dict[str, str | None] = {}
    with engine.connect() as connection:
        for chunk in in_chunks(ids):
            phones.update(connection.execute(
                select(CUSTOMERS.c.customer_id, CUSTOMERS.c.phone)
                .where(CUSTOMERS.c.customer_id.in_(chunk))).tuples().all())
    existing = set(ledger_statuses(engine=engine, offer_keys=keys))
    values = []
    for key, customer, row in zip(keys, ids, rows.itertuples(index=False), strict=True):
        if key in existing:
            continue
        existing.add(key)
        decided = pd.Timestamp(str(row.decided_at)).to_pydatetime()
        holdout = row.group == HOLDOUT
        values.append({
            "offer_key": key, "offer_id": str(row.offer_id), "customer_id": customer,
            "run_id": None, "pass_id": str(row.pass_id), "assigned_group": str(row.group),
            "phone": phones.get(customer) or "", "segments": 1,
            "body": "(a past offer pass, recorded from a file)",
            "status": Status.HOLDOUT if holdout else Status.DELIVERED,
            "attempts": 0 if holdout else 1, "created_at": decided, "updated_at": now,
            "sent_at": None if holdout else decided})
    if values:
        with engine.begin() as connection:
            connection.execute(insert(MESSAGES), values)
    return len(values), len(rows) - len(values)
