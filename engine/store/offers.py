"""SQL for offer SMS: targets of the published run, the offer_message ledger, skips and opt-outs.

The ledger is the exactly-once guarantee: `claim_offer` inserts the row with its unique offer_key
and commits before anyone calls the provider, so a second process (or a restart) that tries the
same key gets an IntegrityError and skips. The one exception is a row in 'retry' (Twilio kept
answering 5xx, and listing found no such message): the next claim of its key takes it over with
a compare-and-swap update instead. A claim also re-reads the opt-out table in its transaction, so
a STOP that arrived after the pass loaded its opt-outs still wins. Timestamps are aware UTC
datetimes (sqlmodel's type).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from engine.models import (
    Customer,
    CustomerResult,
    OfferEarlyStatus,
    OfferMessage,
    OfferSkip,
    OptOut,
    Recommendation,
    SegmentationRun,
)
from engine.store.db import session_scope

RUNS: Table = SegmentationRun.__table__  # type: ignore[attr-defined]
RESULTS: Table = CustomerResult.__table__  # type: ignore[attr-defined]
RECOMMENDATIONS: Table = Recommendation.__table__  # type: ignore[attr-defined]
CUSTOMERS: Table = Customer.__table__  # type: ignore[attr-defined]
MESSAGES: Table = OfferMessage.__table__  # type: ignore[attr-defined]
SKIPS: Table = OfferSkip.__table__  # type: ignore[attr-defined]
OPT_OUTS: Table = OptOut.__table__  # type: ignore[attr-defined]
EARLY: Table = OfferEarlyStatus.__table__  # type: ignore[attr-defined]
# An early callback whose sid never shows up (a message not sent by Segmint) is dropped after this.
EARLY_STATUS_KEPT = timedelta(days=7)

# A later pass may claim a row in this state again (reconciling with the provider first).
RETRYABLE = "retry"
# A customer kept out of an offer to measure it (engine/outcomes.py): never messaged for it.
HOLDOUT = "holdout"
# Rows in these states never reached a customer: they do not count towards the frequency cap.
NOT_DELIVERED_TO_ANYONE = ("dry_run", "failed", RETRYABLE, HOLDOUT)
# Only these states may be moved forward by a provider status callback, by rank.
STATUS_RANK = {"sending": 0, "unknown": 0, "queued": 1, "sent": 2,
               "delivered": 3, "undelivered": 3, "failed": 3}


@dataclass(frozen=True)
class OfferTarget:
    """A customer of the published run in one of the offer classes, with what a message needs."""

    customer_id: str
    customer_class: str
    first_name: str | None
    phone: str | None
    phone_status: str
    sms_consent: bool
    timezone: str | None
    product: str | None  # description of the top recommendation, if any


@dataclass(frozen=True)
class PendingMessage:
    """A ledger row to reconcile with the provider: left in 'sending' (a pass died between the
    claim and the provider's answer) or in 'retry' (5xx answers)."""

    id: int
    offer_key: str
    customer_id: str
    phone: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class Claim:
    """What claim_offer got: a ledger row to send under, or why not."""

    message_id: int | None
    refused: str | None = None  # 'already_sent' or 'opted_out' when message_id is None
    earlier: PendingMessage | None = None  # the 'retry' row this claim took over


class _OptedOut(Exception):
    """Rolls a claim back: the number opted out after the pass read the opt-outs."""


def _pending(*where: ColumnElement[bool]) -> Select[Any]:
    """The PendingMessage columns of the ledger rows matching `where`, oldest first."""
    return (select(MESSAGES.c.id, MESSAGES.c.offer_key, MESSAGES.c.customer_id,
                   MESSAGES.c.phone, MESSAGES.c.body, MESSAGES.c.created_at)
            .where(*where).order_by(MESSAGES.c.id))


def latest_published_run(engine: Engine) -> int | None:
    with session_scope(engine) as session:
        return session.execute(
            select(func.max(RUNS.c.id)).where(RUNS.c.status == "succeeded")
        ).scalar_one_or_none()


def load_offer_targets(engine: Engine, *, run_id: int, classes: Iterable[str]) -> list[OfferTarget]:
    """Customers of run_id whose class is in classes, ordered by customer id (stable passes)."""
    wanted = sorted(set(classes))
    if not wanted:
        return []
    result, customer = RESULTS.c, CUSTOMERS.c
    top = RECOMMENDATIONS.alias("top")
    first_rank = (
        select(func.min(RECOMMENDATIONS.c.rank))
        .where(RECOMMENDATIONS.c.run_id == result.run_id,
               RECOMMENDATIONS.c.customer_id == result.customer_id)
        .correlate(RESULTS)
        .scalar_subquery()
    )
    query = (
        select(result.customer_id, result.customer_class, customer.first_name, customer.phone,
               customer.phone_status, customer.sms_consent, customer.timezone, top.c.description)
        .select_from(RESULTS)
        .outerjoin(CUSTOMERS, customer.customer_id == result.customer_id)
        .outerjoin(top, and_(top.c.run_id == result.run_id, top.c.customer_id == result.customer_id,
                             top.c.rank == first_rank))
        .where(result.run_id == run_id, result.customer_class.in_(wanted))
        .order_by(result.customer_id)
    )
    with session_scope(engine) as session:
        rows = session.execute(query).all()
    return [
        OfferTarget(customer_id=row[0], customer_class=row[1], first_name=row[2], phone=row[3],
                    phone_status=row[4] or "unknown", sms_consent=bool(row[5]), timezone=row[6],
                    product=row[7])
        for row in rows
    ]


def customers_with_key(engine: Engine, *, offer_keys: Iterable[str]) -> set[str]:
    """Which of these offer keys already exist (any status but 'retry')."""
    keys = list(offer_keys)
    found: set[str] = set()
    with session_scope(engine) as session:
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            found.update(session.execute(
                select(MESSAGES.c.offer_key).where(MESSAGES.c.offer_key.in_(chunk),
                                                   MESSAGES.c.status != RETRYABLE)
            ).scalars())
    return found


def holdout_keys(engine: Engine, *, offer_keys: Iterable[str]) -> set[str]:
    """Which of these offer keys hold a customer out of their offer (status 'holdout')."""
    keys = list(offer_keys)
    found: set[str] = set()
    with engine.connect() as connection:
        for start in range(0, len(keys), 500):
            found.update(connection.execute(
                select(MESSAGES.c.offer_key).where(MESSAGES.c.offer_key.in_(
                    keys[start:start + 500]), MESSAGES.c.status == HOLDOUT)).scalars())
    return found


def recently_messaged(engine: Engine, *, since: datetime) -> set[str]:
    """Customers with a message that may have reached them since `since` (the frequency cap)."""
    with session_scope(engine) as session:
        return set(session.execute(
            select(MESSAGES.c.customer_id).distinct().where(
                MESSAGES.c.created_at >= since,
                MESSAGES.c.status.not_in(NOT_DELIVERED_TO_ANYONE),
            )
        ).scalars())


def _opted_out(session: Session, phone: str) -> bool:
    return session.execute(
        select(OPT_OUTS.c.phone).where(OPT_OUTS.c.phone == phone, OPT_OUTS.c.opted_out.is_(True))
    ).first() is not None


def claim_offer(engine: Engine, *, offer_key: str, offer_id: str, customer_id: str,
                run_id: int | None, phone: str, body: str, segments: int, status: str,
                now: datetime, pass_id: str | None = None, group: str = "treatment") -> Claim:
    """Insert and COMMIT the ledger row. Refused when the key exists (someone else has it;
    a 'retry' row is taken over instead) or when the number has opted out by now."""
    row = OfferMessage(offer_key=offer_key, offer_id=offer_id, customer_id=customer_id,
                       run_id=run_id, phone=phone, body=body, segments=segments, status=status,
                       created_at=now, updated_at=now, pass_id=pass_id, assigned_group=group)
    try:
        with session_scope(engine) as session:
            session.add(row)
            session.flush()  # the write comes first: on SQLite the check below then sees
            if _opted_out(session, phone):  # every STOP committed before this claim
                raise _OptedOut
            message_id = row.id
    except IntegrityError:
        return _take_over_retry(engine, offer_key=offer_key, phone=phone, now=now)
    except _OptedOut:
        return Claim(None, "opted_out")
    return Claim(message_id)


def _take_over_retry(engine: Engine, *, offer_key: str, phone: str, now: datetime) -> Claim:
    """Claim the key's 'retry' row (compare-and-swap to 'sending', stamped now), if it has one."""
    with session_scope(engine) as session:
        found = session.execute(
            _pending(MESSAGES.c.offer_key == offer_key, MESSAGES.c.status == RETRYABLE)
        ).first()
    if found is None:
        return Claim(None, "already_sent")
    earlier = PendingMessage(*found)
    try:
        with session_scope(engine) as session:
            taken = session.execute(
                update(MESSAGES).where(MESSAGES.c.id == earlier.id,
                                       MESSAGES.c.status == RETRYABLE)
                .values(status="sending", created_at=now, updated_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if taken and _opted_out(session, phone):
                raise _OptedOut
    except _OptedOut:
        return Claim(None, "opted_out")
    return Claim(earlier.id, earlier=earlier) if taken else Claim(None, "already_sent")


def rewrite_claim(engine: Engine, *, message_id: int, phone: str, body: str, segments: int,
                  run_id: int | None, now: datetime) -> None:
    """A taken-over 'retry' row gets this pass's message before it is sent."""
    with session_scope(engine) as session:
        session.execute(
            update(MESSAGES).where(MESSAGES.c.id == message_id, MESSAGES.c.status == "sending")
            .values(phone=phone, body=body, segments=segments, run_id=run_id, updated_at=now))


def refresh_dry_run(engine: Engine, *, offer_key: str, body: str, segments: int,
                    phone: str, now: datetime) -> None:
    """A repeated dry run re-renders its row instead of claiming a new one."""
    with session_scope(engine) as session:
        session.execute(
            update(MESSAGES).where(MESSAGES.c.offer_key == offer_key,
                                       MESSAGES.c.status == "dry_run")
            .values(body=body, segments=segments, phone=phone, created_at=now, updated_at=now)
        )


def record_result(engine: Engine, *, message_id: int, status: str, now: datetime,
                  provider_sid: str | None = None, error_code: str | None = None,
                  error_text: str | None = None, attempts: int | None = None,
                  only_if_status: Iterable[str] | None = None) -> bool:
    """Write the provider's answer on a claimed row; False when only_if_status did not match."""
    values: dict[str, object] = {"status": status, "updated_at": now, "error_code": error_code,
                                 "error_text": error_text}
    if provider_sid is not None:
        values["provider_sid"] = provider_sid
        values["sent_at"] = now
    if attempts is not None:
        values["attempts"] = attempts
    statement = update(MESSAGES).where(MESSAGES.c.id == message_id)
    if only_if_status is not None:
        statement = statement.where(MESSAGES.c.status.in_(list(only_if_status)))
    with session_scope(engine) as session:
        written = bool(session.execute(statement.values(**values)).rowcount)  # type: ignore[attr-defined]
    if written and provider_sid is not None:
        _apply_early_status(engine, provider_sid=provider_sid, now=now)
    return written


def release_claim(engine: Engine, *, message_id: int) -> None:
    """Drop a claim whose request provably never reached the provider (connection refused)."""
    with session_scope(engine) as session:
        session.execute(delete(MESSAGES).where(MESSAGES.c.id == message_id,
                                                   MESSAGES.c.status == "sending"))


def stale_sending(engine: Engine, *, older_than: datetime) -> list[PendingMessage]:
    with session_scope(engine) as session:
        rows = session.execute(
            _pending(MESSAGES.c.status == "sending", MESSAGES.c.created_at < older_than)
        ).all()
    return [PendingMessage(*row) for row in rows]


def retry_rows(engine: Engine) -> list[PendingMessage]:
    """Every row left in 'retry' (5xx answers, no message listed yet), oldest first."""
    with session_scope(engine) as session:
        rows = session.execute(_pending(MESSAGES.c.status == RETRYABLE)).all()
    return [PendingMessage(*row) for row in rows]


def update_status_by_sid(engine: Engine, *, provider_sid: str, status: str,
                         error_code: str | None, now: datetime) -> bool:
    """Move a message forward to `status`, never backwards: a repeated callback changes nothing."""
    rank = STATUS_RANK[status]
    earlier = [name for name, value in STATUS_RANK.items() if value < rank]
    if not earlier:
        return False
    values: dict[str, object] = {"status": status, "updated_at": now}
    if error_code:
        values["error_code"] = error_code
    with session_scope(engine) as session:
        result = session.execute(
            update(MESSAGES)
            .where(MESSAGES.c.provider_sid == provider_sid, MESSAGES.c.status.in_(earlier))
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def record_status_callback(engine: Engine, *, provider_sid: str, status: str,
                           error_code: str | None, now: datetime) -> str:
    """A delivery status callback: 'updated', 'no change', or 'kept' when no message carries the
    sid yet (it is applied when record_result writes the sid).

    The order makes the race safe on PostgreSQL's read committed as on SQLite: the callback is
    committed to offer_early_status BEFORE the second look for the sid, and record_result looks
    for early callbacks only AFTER committing the sid, so one of the two always sees the other.
    """
    if update_status_by_sid(engine, provider_sid=provider_sid, status=status,
                            error_code=error_code, now=now):
        return "updated"
    if _sid_known(engine, provider_sid):
        # The sender may have committed the sid between the update above and this look: apply
        # the callback again now that the row carries the sid, or it would be neither applied
        # nor kept.
        if update_status_by_sid(engine, provider_sid=provider_sid, status=status,
                                error_code=error_code, now=now):
            return "updated"
        return "no change"
    _keep_early_status(engine, provider_sid=provider_sid, status=status, error_code=error_code,
                       now=now)
    if _sid_known(engine, provider_sid):  # the sender wrote the sid in the meantime
        _apply_early_status(engine, provider_sid=provider_sid, now=now)
        return "updated"
    return "kept"


def _sid_known(engine: Engine, provider_sid: str) -> bool:
    with session_scope(engine) as session:
        return session.execute(
            select(MESSAGES.c.id).where(MESSAGES.c.provider_sid == provider_sid)
        ).first() is not None


def _keep_early_status(engine: Engine, *, provider_sid: str, status: str,
                       error_code: str | None, now: datetime) -> None:
    """Upsert the sid's early callback, keeping the highest-ranked status (ties: the latest)."""
    for _attempt in range(2):  # a concurrent insert of the same sid: retry as an update
        try:
            with session_scope(engine) as session:
                session.execute(delete(EARLY).where(EARLY.c.received_at
                                                    < now - EARLY_STATUS_KEPT))
                row = session.get(OfferEarlyStatus, provider_sid)
                if row is None:
                    session.add(OfferEarlyStatus(provider_sid=provider_sid, status=status,
                                                 error_code=error_code, received_at=now))
                elif STATUS_RANK[status] >= STATUS_RANK.get(row.status, 0):
                    row.status, row.error_code, row.received_at = status, error_code, now
                    session.add(row)
            return
        except IntegrityError:
            continue


def _apply_early_status(engine: Engine, *, provider_sid: str, now: datetime) -> None:
    with session_scope(engine) as session:
        early = session.get(OfferEarlyStatus, provider_sid)
    if early is None:
        return
    update_status_by_sid(engine, provider_sid=provider_sid, status=early.status,
                         error_code=early.error_code, now=now)
    with session_scope(engine) as session:
        session.execute(delete(EARLY).where(EARLY.c.provider_sid == provider_sid))


def early_statuses(engine: Engine) -> list[OfferEarlyStatus]:
    """Callbacks still waiting for their sid (tests, operators)."""
    with session_scope(engine) as session:
        return list(session.execute(select(OfferEarlyStatus)).scalars())


def record_skips(engine: Engine, *, pass_id: str, skips: Iterable[tuple[str, str, str]],
                 now: datetime) -> None:
    """skips: (offer_id, customer_id, reason) triples, written in one transaction."""
    rows = [OfferSkip(pass_id=pass_id, offer_id=offer_id, customer_id=customer_id,
                      reason=reason, created_at=now)
            for offer_id, customer_id, reason in skips]
    if not rows:
        return
    with session_scope(engine) as session:
        session.add_all(rows)


def opted_out_phones(engine: Engine) -> set[str]:
    with session_scope(engine) as session:
        return set(session.execute(
            select(OPT_OUTS.c.phone).where(OPT_OUTS.c.opted_out.is_(True))
        ).scalars())


def set_opt_out(engine: Engine, *, phone: str, opted_out: bool, source: str,
                now: datetime) -> None:
    """Upsert the number's opt-out state (STOP keyword, START keyword, provider error 21610)."""
    for _attempt in range(2):  # a concurrent insert of the same phone: retry as an update
        try:
            with session_scope(engine) as session:
                row = session.get(OptOut, phone)
                if row is None:
                    session.add(OptOut(phone=phone, opted_out=opted_out, source=source,
                                       updated_at=now))
                else:
                    row.opted_out, row.source, row.updated_at = opted_out, source, now
                    session.add(row)
            return
        except IntegrityError:
            continue


def mark_phone_invalid(engine: Engine, *, customer_id: str) -> None:
    with session_scope(engine) as session:
        session.execute(update(CUSTOMERS).where(CUSTOMERS.c.customer_id == customer_id)
                        .values(phone_status="invalid"))


def messages_for_customer(engine: Engine, *, customer_id: str) -> list[OfferMessage]:
    """The customer's ledger rows, oldest first (tests and the dashboard's drill-down)."""
    with session_scope(engine) as session:
        return list(session.execute(
            select(OfferMessage).where(MESSAGES.c.customer_id == customer_id)
            .order_by(MESSAGES.c.id)
        ).scalars())


def all_messages(engine: Engine) -> list[OfferMessage]:
    with session_scope(engine) as session:
        return list(session.execute(select(OfferMessage).order_by(MESSAGES.c.id)).scalars())


def skips_for_pass(engine: Engine, *, pass_id: str | None = None) -> list[OfferSkip]:
    query = select(OfferSkip).order_by(SKIPS.c.id)
    if pass_id is not None:
        query = query.where(SKIPS.c.pass_id == pass_id)
    with session_scope(engine) as session:
        return list(session.execute(query).scalars())


def opt_out_state(engine: Engine, *, phone: str) -> OptOut | None:
    with session_scope(engine) as session:
        return session.get(OptOut, phone)


def offer_ledger(engine: Engine, *, offer_id: str | None = None) -> pd.DataFrame:
    """The ledger's real rows (dry runs left out), oldest first, for the outcomes: customer_id,
    offer_id, pass_id, group, status, created_at, sent_at, customer_class (the customer's class
    in the run the pass used; the published run's for rows without one)."""
    published = (select(func.max(RUNS.c.id)).where(RUNS.c.status == "succeeded")
                 .scalar_subquery())
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
        .where(message.status != "dry_run", ~message.offer_key.startswith("dry-run:"))
        .order_by(message.id))
    if offer_id is not None:
        statement = statement.where(message.offer_id == offer_id)
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    return pd.DataFrame([tuple(row) for row in rows],
                        columns=["customer_id", "offer_id", "pass_id", "group", "status",
                                 "created_at", "sent_at", "customer_class"])


def offer_ids(engine: Engine) -> list[str]:
    """The offers with real ledger rows, by name."""
    with engine.connect() as connection:
        return list(connection.execute(
            select(MESSAGES.c.offer_id).distinct()
            .where(MESSAGES.c.status != "dry_run").order_by(MESSAGES.c.offer_id)).scalars())


def record_past_pass(engine: Engine, *, rows: pd.DataFrame, now: datetime) -> tuple[int, int]:
    """Record a past offer pass (the demo's offer_pass.csv: customer_id, offer_id, pass_id,
    group, decided_at) as ledger rows: treatment rows as delivered messages sent at decided_at,
    holdout rows as holdouts assigned then. Keys already in the ledger are left as they are.
    Returns (rows added, rows already there)."""
    phones: dict[str, str | None] = {}
    with engine.connect() as connection:
        for start in range(0, len(rows), 500):
            chunk = rows["customer_id"].iloc[start:start + 500].astype(str).tolist()
            phones.update(connection.execute(
                select(CUSTOMERS.c.customer_id, CUSTOMERS.c.phone)
                .where(CUSTOMERS.c.customer_id.in_(chunk))).tuples().all())
    keys = [f"{offer}:{customer}" for offer, customer
            in zip(rows["offer_id"], rows["customer_id"], strict=True)]
    with engine.connect() as connection:
        existing: set[str] = set()
        for start in range(0, len(keys), 500):
            existing.update(connection.execute(select(MESSAGES.c.offer_key).where(
                MESSAGES.c.offer_key.in_(keys[start:start + 500]))).scalars())
    values = []
    for key, row in zip(keys, rows.itertuples(index=False), strict=True):
        if key in existing:
            continue
        existing.add(key)
        decided = pd.Timestamp(str(row.decided_at))
        decided = decided.tz_convert("UTC") if decided.tzinfo else decided.tz_localize("UTC")
        holdout = row.group == HOLDOUT
        values.append({
            "offer_key": key, "offer_id": str(row.offer_id), "customer_id": str(row.customer_id),
            "run_id": None, "pass_id": str(row.pass_id), "assigned_group": str(row.group),
            "phone": phones.get(str(row.customer_id)) or "",
            "body": "(a past offer pass, recorded from a file)", "segments": 1,
            "status": HOLDOUT if holdout else "delivered", "attempts": 0 if holdout else 1,
            "created_at": decided.to_pydatetime(), "updated_at": now,
            "sent_at": None if holdout else decided.to_pydatetime()})
    if values:
        with engine.begin() as connection:
            connection.execute(insert(MESSAGES), values)
    return len(values), len(rows) - len(values)
