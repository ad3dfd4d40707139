"""SQL for customers' inbound SMS: each MessageSid is applied once, and an opt-out state is only
ever replaced by a later one.

Twilio's signature carries no timestamp, so a captured, validly signed webhook can be posted
again at any time: the inbound_message table remembers every sid handled (kept, they are small),
and the sid's row and the opt-out change commit together, so a replay (or Twilio's own retry)
changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from engine.models import InboundMessage, OptOut
from engine.store.db import session_scope


def apply_inbound(engine: Engine, *, message_sid: str, phone: str, keyword: str,
                  opted_out: bool | None, now: datetime) -> bool:
    """Record the sid and, when opted_out is not None, set the number's opt-out state in the same
    transaction. False (nothing changed) when the sid was handled before. A state written later
    than `now` (a newer message handled first) is left alone."""
    try:
        with session_scope(engine) as session:
            session.add(InboundMessage(message_sid=message_sid, phone=phone,
                                       keyword=keyword[:32], received_at=now))
            session.flush()  # a handled sid fails here, before the opt-out is touched
            if opted_out is not None:
                row = session.get(OptOut, phone)
                if row is None:
                    session.add(OptOut(phone=phone, opted_out=opted_out, source=keyword[:32],
                                       updated_at=now))
                elif row.updated_at <= now:
                    row.opted_out, row.source, row.updated_at = opted_out, keyword[:32], now
                    session.add(row)
    except IntegrityError:
        return False
    return True


def inbound_handled(engine: Engine, *, message_sid: str) -> bool:
    with session_scope(engine) as session:
        return session.get(InboundMessage, message_sid) is not None
