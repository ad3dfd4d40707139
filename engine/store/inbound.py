"""SQL for customers' inbound SMS: each MessageSid is applied once, and an opt-out state is only
ever replaced by a later one.

Twilio's signature carries no timestamp, so a captured, validly signed webhook can be posted
again at any time: the inbound_message table remembers every sid handled (kept, they are small),
and the sid's row and the opt-out change commit together, so a replay (or Twilio's own retry)
changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from engine.store.customers import write_opt_out
from engine.store.tables import INBOUND


def apply_inbound(*, engine: Engine, message_sid: str, phone: str, keyword: str,
                  opted_out: bool | None, now: datetime) -> bool:
    """Record the sid and, when opted_out is not None, set the number's opt-out state in the same
    transaction. False (nothing changed) when the sid was handled before. A state written later
    than `now` (a newer message handled first) is left alone."""
    try:
        with engine.begin() as connection:
            # a handled sid fails here, before the opt-out is touched
            connection.execute(insert(INBOUND).values(
                message_sid=message_sid, phone=phone, keyword=keyword[:32], received_at=now))
            if opted_out is not None:
                write_opt_out(connection=connection, phone=phone, opted_out=opted_out,
                              source=keyword[:32], now=now)
    except IntegrityError:
        return False
    return True


def inbound_handled(*, engine: Engine, message_sid: str) -> bool:
    with engine.connect() as connection:
        return connection.execute(
            select(INBOUND.c.message_sid).where(INBOUND.c.message_sid == message_sid)
        ).first() is not None
