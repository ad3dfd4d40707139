"""SQL for offer SMS: targets of the published run, the offer_message ledger, skips, the early
status callbacks. Statuses are engine.ledger.LedgerStatus. The reads for results (the Offers
page's summary, the ledger for the outcomes, a past pass recorded from a file) are
engine/store/offer_results.py.

The ledger is the exactly-once guarantee: `claim_offer` inserts the row with its unique offer_key
and commits before anyone calls the provider, so a second process (or a restart) that tries the
same key gets an IntegrityError and skips. The one exception is a row in 'retry' (Twilio kept
answering 5xx, and listing found no such message): the next claim of its key takes it over with
a compare-and-swap update instead. A claim also re-reads the opt-out table in its transaction, so
a STOP that arrived after the pass loaded its opt-outs still wins. Timestamps are aware UTC
datetimes (sqlmodel's type).

Public functions take the engine and run one transaction each; the steps they are made of take
a connection (`_x(connection, ...)`), so a caller needing several steps in one transaction can
compose them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from engine.ledger import NOT_DELIVERED_TO_ANYONE, STATUS_RANK
from engine.ledger import LedgerStatus as Status
from engine.outcomes import TREATMENT
from engine.store.tables import (
    CUSTOMERS,
    EARLY_STATUSES,
    MESSAGES,
    OPT_OUTS,
    RECOMMENDATIONS,
    RESULTS,
    SKIPS,
    in_chunks,
)

# An early callback whose sid never shows up (a message not sent by Segmint) is dropped after this.
EARLY_STATUS_KEPT = timedelta(days=7)


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
    churn_risk: str | None = None  # from the run's CLV, when a template asks for it
    clv_365d: float | None = None


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


# --- who gets an offer --------------------------------------------------------------------------

def load_offer_targets(*, engine: Engine, run_id: int,
                       classes: Iterable[str]) -> list[OfferTarget]:
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
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        OfferTarget(customer_id=row[0], customer_class=row[1], first_name=row[2], phone=row[3],
                    phone_status=row[4] or "unknown", sms_consent=bool(row[5]), timezone=row[6],
                    product=row[7])
        for row in rows
    ]


def ledger_statuses(*, engine: Engine, offer_keys: Iterable[str]) -> dict[str, str]:
    """The ledger status of each of these offer keys that has a row (a key has at most one)."""
    found: dict[str, str] = {}
    with engine.connect() as connection:
        for chunk in in_chunks(list(offer_keys)):
            found.update(connection.execute(
                select(MESSAGES.c.offer_key, MESSAGES.c.status)
                .where(MESSAGES.c.offer_key.in_(chunk))).tuples().all())
    return found


def phone_holders(*, engine: Engine, offer_ids: Iterable[str]) -> dict[tuple[str, str], str]:
    """(offer_id, phone) -> the customer whose ledger row has that offer for that number (any
    real row, dry runs aside): one number gets an offer once, even when customers share it."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(MESSAGES.c.offer_id, MESSAGES.c.phone, MESSAGES.c.customer_id)
            .where(MESSAGES.c.offer_id.in_(list(offer_ids)),
                   MESSAGES.c.status != Status.DRY_RUN)
            .order_by(MESSAGES.c.id)
        ).all()
    holders: dict[tuple[str, str], str] = {}
    for offer_id, phone, customer_id in rows:
        holders.setdefault((offer_id, phone), customer_id)
    return holders


def recently_messaged(*, engine: Engine, since: datetime) -> set[str]:
    """Customers with a message that may have reached them since `since` (the frequency cap)."""
    with engine.connect() as connection:
        return set(connection.execute(
            select(MESSAGES.c.customer_id).distinct().where(
                MESSAGES.c.created_at >= since,
                MESSAGES.c.status.not_in(NOT_DELIVERED_TO_ANYONE),
            )
        ).scalars())


# --- claims -------------------------------------------------------------------------------------

def _opted_out(connection: Connection, phone: str) -> bool:
    return connection.execute(
        select(OPT_OUTS.c.phone).where(OPT_OUTS.c.phone == phone, OPT_OUTS.c.opted_out.is_(True))
    ).first() is not None


def claim_offer(*, engine: Engine, offer_key: str, offer_id: str, customer_id: str,
                run_id: int | None, phone: str, body: str, segments: int, status: str,
                now: datetime, pass_id: str | None = None, group: str = TREATMENT) -> Claim:
    """Insert and COMMIT the ledger row. Refused when the key exists (someone else has it;
    a 'retry' row is taken over instead) or when the number has opted out by now."""
    try:
        with engine.begin() as connection:
            key = connection.execute(insert(MESSAGES).values(
                offer_key=offer_key, offer_id=offer_id, customer_id=customer_id, run_id=run_id,
                phone=phone, body=body, segments=segments, status=status, attempts=0,
                created_at=now, updated_at=now, pass_id=pass_id,
                assigned_group=group)).inserted_primary_key
            # The write comes first: on SQLite the check below then sees every STOP committed
            # before this claim.
            if _opted_out(connection, phone):
                raise _OptedOut
            assert key is not None
            message_id = int(key[0])
    except IntegrityError:
        return _take_over_retry(engine, offer_key=offer_key, phone=phone, now=now)
    except _OptedOut:
        return Claim(None, "opted_out")
    return Claim(message_id)


def _take_over_retry(engine: Engine, *, offer_key: str, phone: str, now: datetime) -> Claim:
    """Claim the key's 'retry' row (compare-and-swap to 'sending', stamped now), if it has one."""
    with engine.connect() as connection:
        found = connection.execute(
            _pending(MESSAGES.c.offer_key == offer_key, MESSAGES.c.status == Status.RETRY)
        ).first()
    if found is None:
        return Claim(None, "already_sent")
    earlier = PendingMessage(*found)
    try:
        with engine.begin() as connection:
            taken = connection.execute(
                update(MESSAGES).where(MESSAGES.c.id == earlier.id,
                                       MESSAGES.c.status == Status.RETRY)
                .values(status=Status.SENDING, created_at=now, updated_at=now)
            ).rowcount
            if taken and _opted_out(connection, phone):
                raise _OptedOut
    except _OptedOut:
        return Claim(None, "opted_out")
    return Claim(earlier.id, earlier=earlier) if taken else Claim(None, "already_sent")


def rewrite_claim(*, engine: Engine, message_id: int, phone: str, body: str, segments: int,
                  run_id: int | None, now: datetime) -> None:
    """A taken-over 'retry' row gets this pass's message before it is sent."""
    _update(engine, MESSAGES.c.id == message_id, MESSAGES.c.status == Status.SENDING,
            phone=phone, body=body, segments=segments, run_id=run_id, updated_at=now)


def refresh_dry_run(*, engine: Engine, offer_key: str, body: str, segments: int,
                    phone: str, now: datetime) -> None:
    """A repeated dry run re-renders its row instead of claiming a new one."""
    _update(engine, MESSAGES.c.offer_key == offer_key, MESSAGES.c.status == Status.DRY_RUN,
            body=body, segments=segments, phone=phone, created_at=now, updated_at=now)


def _update(engine: Engine, *where: ColumnElement[bool], **values: object) -> None:
    """Set `values` on the ledger rows matching `where`, in a transaction of its own."""
    with engine.begin() as connection:
        connection.execute(update(MESSAGES).where(*where).values(**values))


def record_result(*, engine: Engine, message_id: int, status: str, now: datetime,
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
    with engine.begin() as connection:
        written = bool(connection.execute(statement.values(**values)).rowcount)
    if written and provider_sid is not None:
        _apply_early_status(engine, provider_sid=provider_sid, now=now)
    return written


def release_claim(*, engine: Engine, message_id: int) -> None:
    """Drop a claim whose request provably never reached the provider (connection refused)."""
    with engine.begin() as connection:
        connection.execute(delete(MESSAGES).where(MESSAGES.c.id == message_id,
                                                  MESSAGES.c.status == Status.SENDING))


def stale_sending(*, engine: Engine, older_than: datetime) -> list[PendingMessage]:
    with engine.connect() as connection:
        rows = connection.execute(
            _pending(MESSAGES.c.status == Status.SENDING, MESSAGES.c.created_at < older_than)
        ).all()
    return [PendingMessage(*row) for row in rows]


def retry_rows(*, engine: Engine) -> list[PendingMessage]:
    """Every row left in 'retry' (5xx answers, no message listed yet), oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(_pending(MESSAGES.c.status == Status.RETRY)).all()
    return [PendingMessage(*row) for row in rows]


# --- status callbacks ---------------------------------------------------------------------------

def update_status_by_sid(*, engine: Engine, provider_sid: str, status: str,
                         error_code: str | None, now: datetime) -> bool:
    """Move a message forward to `status`, never backwards: a repeated callback changes nothing."""
    with engine.begin() as connection:
        return _move_forward(connection, provider_sid=provider_sid, status=status,
                             error_code=error_code, now=now)


def _move_forward(connection: Connection, *, provider_sid: str, status: str,
                  error_code: str | None, now: datetime) -> bool:
    rank = STATUS_RANK[status]
    earlier = [name for name, value in STATUS_RANK.items() if value < rank]
    if not earlier:
        return False
    values: dict[str, object] = {"status": status, "updated_at": now}
    if error_code:
        values["error_code"] = error_code
    result = connection.execute(
        update(MESSAGES)
        .where(MESSAGES.c.provider_sid == provider_sid, MESSAGES.c.status.in_(earlier))
        .values(**values))
    return bool(result.rowcount)


def record_status_callback(*, engine: Engine, provider_sid: str, status: str,
                           error_code: str | None, now: datetime) -> str:
    """A delivery status callback: 'updated', 'no change', or 'kept' when no message carries the
    sid yet (it is applied when record_result writes the sid).

    The order makes the race safe on PostgreSQL's read committed as on SQLite: the callback is
    committed to offer_early_status BEFORE the second look for the sid, and record_result looks
    for early callbacks only AFTER committing the sid, so one of the two always sees the other.
    """
    if update_status_by_sid(engine=engine, provider_sid=provider_sid, status=status,
                            error_code=error_code, now=now):
        return "updated"
    if _sid_known(engine, provider_sid):
        # The sender may have committed the sid between the update above and this look: apply
        # the callback again now that the row carries the sid, or it would be neither applied
        # nor kept.
        if update_status_by_sid(engine=engine, provider_sid=provider_sid, status=status,
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
    with engine.connect() as connection:
        return connection.execute(
            select(MESSAGES.c.id).where(MESSAGES.c.provider_sid == provider_sid)
        ).first() is not None


def _keep_early_status(engine: Engine, *, provider_sid: str, status: str,
                       error_code: str | None, now: datetime) -> None:
    """Upsert the sid's early callback, keeping the highest-ranked status (ties: the latest)."""
    early = EARLY_STATUSES
    for _attempt in range(2):  # a concurrent insert of the same sid: retry as an update
        try:
            with engine.begin() as connection:
                connection.execute(delete(early).where(early.c.received_at
                                                       < now - EARLY_STATUS_KEPT))
                kept = connection.execute(select(early.c.status).where(
                    early.c.provider_sid == provider_sid)).scalar_one_or_none()
                values = {"status": status, "error_code": error_code, "received_at": now}
                if kept is None:
                    connection.execute(insert(early).values(provider_sid=provider_sid, **values))
                elif STATUS_RANK[status] >= STATUS_RANK.get(kept, 0):
                    connection.execute(update(early).where(early.c.provider_sid == provider_sid)
                                       .values(**values))
            return
        except IntegrityError:
            continue


def _apply_early_status(engine: Engine, *, provider_sid: str, now: datetime) -> None:
    early = EARLY_STATUSES
    with engine.connect() as connection:
        kept = connection.execute(select(early.c.status, early.c.error_code).where(
            early.c.provider_sid == provider_sid)).first()
    if kept is None:
        return
    update_status_by_sid(engine=engine, provider_sid=provider_sid, status=kept.status,
                         error_code=kept.error_code, now=now)
    with engine.begin() as connection:
        connection.execute(delete(early).where(early.c.provider_sid == provider_sid))


# --- skips --------------------------------------------------------------------------------------

def record_skips(*, engine: Engine, pass_id: str, skips: Iterable[tuple[str, str, str]],
                 now: datetime) -> None:
    """skips: (offer_id, customer_id, reason) triples, written in one transaction."""
    rows = [{"pass_id": pass_id, "offer_id": offer_id, "customer_id": customer_id,
             "reason": reason, "created_at": now}
            for offer_id, customer_id, reason in skips]
    if not rows:
        return
    with engine.begin() as connection:
        connection.execute(insert(SKIPS), rows)
