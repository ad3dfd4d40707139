"""The one-customer look-up and the SMS facts it reads fresh (engine.store.customers)."""

from __future__ import annotations

from typing import Any

from engine.store import customers
from tests.engine.store.conftest import ts


def test_customer_lookup_masks_the_phone(filled: Any) -> None:
    profile = customers.customer_profile(engine=filled, customer_id="alice", run_id=2)
    assert profile is not None
    assert profile["customer_class"] == "High value" and profile["first_name"] == "Alice"
    assert profile["phone"] != "+447700900123" and profile["phone"].endswith("23")
    assert customers.customer_profile(engine=filled, customer_id="nobody", run_id=2) is None
    purchases = customers.customer_purchases(engine=filled, customer_id="alice")
    assert len(purchases) == 4 and purchases["invoice"].iloc[0] == "1007"
    recs = customers.customer_recommendations(engine=filled, run_id=2, customer_id="bob")
    assert list(recs["reason"]) == ["bought with A"]
    assert customers.sample_customers(engine=filled, run_id=2, limit=2) == ["alice", "carol"]



def test_customer_contact_reads_consent_opt_out_and_phone_status_fresh(filled: Any) -> None:
    """The look-up's SMS facts come from the customer row and the opt-out list as they are now
    (a STOP arrives by webhook long after the run)."""
    from sqlalchemy import update

    from engine.store.tables import CUSTOMERS, OPT_OUTS

    assert customers.customer_contact(engine=filled, customer_id="alice") == \
        (False, "unknown", None)
    assert customers.customer_contact(engine=filled, customer_id="nobody") == \
        (False, "unknown", None)
    with filled.begin() as connection:
        connection.execute(update(CUSTOMERS).where(CUSTOMERS.c.customer_id == "alice")
                           .values(sms_consent=True, phone_status="invalid"))
        connection.execute(OPT_OUTS.insert().values(phone="+447700900123", opted_out=True,
                                                    source="STOP",
                                                    updated_at=ts("2011-03-02 00:00:00")))
    assert customers.customer_contact(engine=filled, customer_id="alice") == \
        (True, "invalid", "STOP")
    profile = customers.customer_profile(engine=filled, customer_id="alice", run_id=2)
    assert profile is not None and profile["opt_out"] == "STOP"
    with filled.begin() as connection:  # START: the row stays, opted_out goes false
        connection.execute(update(OPT_OUTS).values(opted_out=False, source="START"))
    assert customers.customer_contact(engine=filled, customer_id="alice") == \
        (True, "invalid", None)

