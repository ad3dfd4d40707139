"""What the tests read back from the offer ledger (the product never reads rows this way)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import select

from engine.models import OfferEarlyStatus, OfferMessage, OfferSkip, OptOut
from tests.conftest import session_scope


def early_statuses(engine: Engine) -> list[OfferEarlyStatus]:
    """Callbacks still waiting for their sid."""
    with session_scope(engine) as session:
        return list(session.exec(select(OfferEarlyStatus)).all())


def messages_for_customer(engine: Engine, *, customer_id: str) -> list[OfferMessage]:
    """The customer's ledger rows, oldest first."""
    with session_scope(engine) as session:
        return list(session.exec(select(OfferMessage).where(OfferMessage.customer_id == customer_id)
                                 .order_by(OfferMessage.id)).all())  # type: ignore[arg-type]


def all_messages(engine: Engine) -> list[OfferMessage]:
    with session_scope(engine) as session:
        return list(session.exec(select(OfferMessage)
                                 .order_by(OfferMessage.id)).all())  # type: ignore[arg-type]


def skips_for_pass(engine: Engine, *, pass_id: str | None = None) -> list[OfferSkip]:
    query = select(OfferSkip).order_by(OfferSkip.id)  # type: ignore[arg-type]
    if pass_id is not None:
        query = query.where(OfferSkip.pass_id == pass_id)
    with session_scope(engine) as session:
        return list(session.exec(query).all())


def opt_out_state(engine: Engine, *, phone: str) -> OptOut | None:
    with session_scope(engine) as session:
        return session.get(OptOut, phone)
