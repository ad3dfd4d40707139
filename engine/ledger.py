"""The offer ledger's statuses (offer_message.status): one enum that the store, the sender, the
webhooks and the dashboard use, and the groups of statuses the rules are written in.

How a row moves (notifications/offers.py tells why):
- SENDING: claimed, committed before Twilio is called; DRY_RUN: a dry run's row.
- QUEUED, SENT, DELIVERED, UNDELIVERED, FAILED: Twilio's answer, then its status callbacks.
- RETRY: Twilio answered 5xx and no message was listed yet; a later pass reconciles, then sends.
- UNKNOWN: a claim whose outcome nobody can know (Twilio lists no message); left to an operator.
- HOLDOUT: a customer kept out of the offer to measure it (engine/outcomes.py): no message ever.
"""

from __future__ import annotations

from enum import StrEnum

# The key of a dry run's rows starts with this; a real row's key is `<offer_id>:<customer_id>`.
DRY_RUN_PREFIX = "dry-run:"


def offer_key(offer_id: str, customer_id: str, *, dry_run: bool = False) -> str:
    """The ledger's unique key: one row per offer and customer (and one per dry run)."""
    return f"{DRY_RUN_PREFIX if dry_run else ''}{offer_id}:{customer_id}"


class LedgerStatus(StrEnum):
    SENDING = "sending"
    DRY_RUN = "dry_run"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    RETRY = "retry"
    UNKNOWN = "unknown"
    HOLDOUT = "holdout"


# Rows in these states never reached a customer: they do not count towards the frequency cap.
NOT_DELIVERED_TO_ANYONE = (LedgerStatus.DRY_RUN, LedgerStatus.FAILED, LedgerStatus.RETRY,
                           LedgerStatus.HOLDOUT)
# Only these states may be moved forward by a provider status callback, by rank.
STATUS_RANK: dict[str, int] = {
    LedgerStatus.SENDING: 0, LedgerStatus.UNKNOWN: 0, LedgerStatus.QUEUED: 1, LedgerStatus.SENT: 2,
    LedgerStatus.DELIVERED: 3, LedgerStatus.UNDELIVERED: 3, LedgerStatus.FAILED: 3}
# What the Offers page counts as a message sent to Twilio, and as one that arrived.
ATTEMPTED = (LedgerStatus.SENT, LedgerStatus.QUEUED, LedgerStatus.DELIVERED,
             LedgerStatus.UNDELIVERED, LedgerStatus.FAILED, LedgerStatus.UNKNOWN)
DELIVERED = (LedgerStatus.DELIVERED,)
NOT_DELIVERED = (LedgerStatus.FAILED, LedgerStatus.UNDELIVERED)
