"""The dashboard's SQL aggregates on SQLite and PostgreSQL, with a few rows inserted by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest

from engine.models import (
    AssociationRule,
    ClusterProfile,
    Customer,
    CustomerResult,
    JobHistory,
    OfferMessage,
    OptOut,
    Product,
    Recommendation,
    SegmentationRun,
    SourceFile,
    TransactionLine,
)
from engine.store import aggregates, session_scope
from engine.store.users import UserError, find_user, list_users, save_user

NON_PRODUCT = ["POST"]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def line(no: int, invoice: str, code: str | None, qty: float, price: float, when: str,
         customer: str | None) -> TransactionLine:
    return TransactionLine(line_hash=no, source_file_id=1, line_no=no, invoice=invoice,
                           stock_code=code, description=None, quantity=qty, unit_price=price,
                           amount=qty * price, ts=ts(when), customer_id=customer,
                           country="United Kingdom",
                           is_return=invoice.startswith("C") or qty < 0)


def lines() -> list[TransactionLine]:
    return [
    # January: alice buys twice, bob once (plus postage), one anonymous line.
    line(1, "1001", "A", 2, 10.0, "2011-01-05 10:00:00", "alice"),
    line(2, "1001", "POST", 1, 5.0, "2011-01-05 10:00:00", "alice"),
    line(3, "1002", "B", 1, 35.0, "2011-01-20 12:00:00", "alice"),
    line(4, "1003", "A", 1, 10.0, "2011-01-31 23:30:00", "bob"),
    line(5, "1004", "C", 4, 2.5, "2011-01-15 09:00:00", None),
    # February: carol is new, bob returns an item, alice buys again.
    line(6, "1005", "B", 2, 30.0, "2011-02-01 00:10:00", "carol"),
    line(7, "C1006", "A", -1, 10.0, "2011-02-03 08:00:00", "bob"),
    line(8, "1007", "A", 1, 10.0, "2011-02-10 16:00:00", "alice"),
    ]


def result(run_id: int, customer: str, cls: str, cluster: int, tier: str, monetary: float,
           segment: str = "VIP") -> CustomerResult:
    return CustomerResult(run_id=run_id, customer_id=customer, recency_days=3, frequency=2,
                          monetary=monetary, r_score=5, f_score=4, m_score=5, rfm_code="545",
                          rfm_score=545, rfm_segment=segment, rfm_grid_segment="Champions",
                          cluster=cluster, value_tier=tier, customer_class=cls)


def populate(engine: Any) -> None:
    now = ts("2011-03-01 00:00:00")
    with session_scope(engine) as session:
        session.add(SourceFile(path="x.csv", sha256="0" * 64, kind="transactions", loaded_at=now))
        session.add_all([Product(stock_code="A", description="Apple mug"),
                         Product(stock_code="B", description="Bread bin")])
        session.add(Customer(customer_id="alice", first_name="Alice", phone="+447700900123"))
        session.flush()
        session.add_all(lines())
        session.add_all([
            SegmentationRun(status="succeeded", started_at=ts("2011-02-11 01:00:00"),
                            finished_at=ts("2011-02-11 01:01:00"), as_of=date(2011, 2, 11), k=2,
                            n_customers=3, diagnostics={"chosen_k": 2}),
            SegmentationRun(status="succeeded", started_at=ts("2011-02-12 01:00:00"),
                            finished_at=ts("2011-02-12 01:01:00"), as_of=date(2011, 2, 12), k=2,
                            n_customers=3),
            SegmentationRun(status="failed", started_at=ts("2011-02-13 01:00:00"),
                            error="boom"),
        ])
        session.flush()
        session.add_all([
            result(1, "alice", "High value", 0, "High value", 70.0),
            result(1, "bob", "Ordinary", 1, "Low value", 10.0, "Hibernating"),
            result(2, "alice", "High value", 0, "High value", 80.0),
            result(2, "bob", "Negative", 1, "Low value", 0.0, "Hibernating"),
            result(2, "carol", "New", 1, "Low value", 60.0, "New"),
            ClusterProfile(run_id=2, cluster=0, size=1, recency_days=1, frequency=3,
                           monetary=80, revenue=80, revenue_share=0.57, value_tier="High value",
                           strategy="VIP"),
            ClusterProfile(run_id=2, cluster=1, size=2, recency_days=9, frequency=1,
                           monetary=30, revenue=60, revenue_share=0.43, value_tier="Low value",
                           strategy="Win back"),
            AssociationRule(run_id=2, cluster=0, antecedents="A", consequents="B", support=0.5,
                            confidence=0.8, lift=2.0, leverage=0.1),
            AssociationRule(run_id=2, cluster=None, antecedents="B", consequents="A",
                            support=0.4, confidence=0.6, lift=1.2, leverage=0.05),
            Recommendation(run_id=2, customer_id="bob", rank=1, stock_code="B",
                           description="Bread bin", score=0.9, reason="bought with A"),
        ])
        session.add_all([
            OfferMessage(offer_key=f"vip:{c}", offer_id="vip", customer_id=c, run_id=2,
                         phone="+447700900123", body="hi", status=status, created_at=now,
                         updated_at=now)
            for c, status in (("alice", "delivered"), ("bob", "failed"), ("carol", "dry_run"),
                              ("dave", "retry"))
        ])
        session.add(OptOut(phone="+447700900999", source="STOP", updated_at=now))
        session.add_all([
            JobHistory(job_id="pipeline", trigger="cron", started_at=ts("2011-02-12 01:00:00"),
                       finished_at=ts("2011-02-12 01:02:00"), status="succeeded", run_id=2),
            JobHistory(job_id="pipeline", trigger="cron", started_at=ts("2011-02-13 01:00:00"),
                       status="failed", error="run 3 failed: boom"),
        ])


@pytest.fixture
def filled(db: Any) -> Any:
    populate(db)
    return db


def test_kpis_and_monthly_trends(filled: Any) -> None:
    kpis = aggregates.kpis(engine=filled)
    assert kpis["revenue"] == pytest.approx(20 + 5 + 35 + 10 + 10 + 60 - 10 + 10)
    assert kpis["orders"] == 6  # distinct purchase invoices, the return is not an order
    assert kpis["customers"] == 3
    assert kpis["aov"] == pytest.approx(kpis["revenue"] / 6)
    january = aggregates.kpis(engine=filled, since=date(2011, 1, 1), until=date(2011, 1, 31))
    assert january["revenue"] == pytest.approx(80.0) and january["orders"] == 4
    assert january["customers"] == 2  # the 23:30 line on the 31st is inside the window

    monthly = aggregates.monthly_trends(engine=filled)
    assert list(monthly["month"]) == ["2011-01", "2011-02"]
    assert list(monthly["orders"]) == [4, 2]
    assert list(monthly["active_customers"]) == [2, 2]
    assert list(monthly["new_customers"]) == [2, 1]
    assert monthly["revenue"].tolist() == pytest.approx([80.0, 60.0])
    only_feb = aggregates.monthly_trends(engine=filled, since=date(2011, 2, 1))
    assert list(only_feb["month"]) == ["2011-02"]
    assert list(only_feb["new_customers"]) == [1]  # first purchases over every line
    firsts = aggregates.new_customers_by_month(engine=filled)
    assert dict(zip(firsts["month"], firsts["new_customers"], strict=True)) == {
        "2011-01": 2, "2011-02": 1}
    given = aggregates.monthly_trends(engine=filled, since=date(2011, 2, 1), new_customers=firsts)
    pd.testing.assert_frame_equal(given, only_feb)


def test_products_leave_out_non_product_codes(filled: Any) -> None:
    products = aggregates.product_summary(engine=filled, non_product_codes=NON_PRODUCT)
    by_code = products.set_index("stock_code")
    assert "POST" not in by_code.index
    assert by_code.loc["A", "revenue"] == pytest.approx(20 + 10 - 10 + 10)
    assert by_code.loc["A", "quantity"] == pytest.approx(3)
    assert by_code.loc["A", "customers"] == 2
    assert by_code.loc["B", "description"] == "Bread bin"
    assert by_code.loc["B", "customers"] == 2

    per_class = aggregates.top_products_by_group(engine=filled, run_id=2, by="customer_class",
                                                 non_product_codes=NON_PRODUCT, limit=1)
    assert dict(zip(per_class["group"], per_class["stock_code"], strict=True)) == {
        "High value": "B", "Negative": "A", "New": "B"}
    # Several groupings from one query: the same rows as one query per grouping (customers
    # summed over the finer groups count each customer once).
    both = aggregates.top_products_by_groups(engine=filled, run_id=2,
                                             by=("customer_class", "value_tier"),
                                             non_product_codes=NON_PRODUCT, limit=3)
    for by in ("customer_class", "value_tier"):
        alone = aggregates.top_products_by_group(engine=filled, run_id=2, by=by,
                                                 non_product_codes=NON_PRODUCT, limit=3)
        pd.testing.assert_frame_equal(both[by], alone)
    assert list(both["value_tier"]["group"].unique()) == ["High value", "Low value"]


def test_runs_segments_and_transitions(filled: Any) -> None:
    published = aggregates.published_run(engine=filled)
    assert published is not None and published["id"] == 2
    assert list(aggregates.list_runs(engine=filled)["id"]) == [2, 1]
    sizes = aggregates.segment_summary(engine=filled, run_id=2, by="customer_class")
    assert dict(zip(sizes["customer_class"], sizes["customers"], strict=True)) == {
        "High value": 1, "Negative": 1, "New": 1}
    rows = aggregates.customer_results(engine=filled, run_id=2, classes=["New", "Negative"])
    assert list(rows.columns) == aggregates.SEGMENT_COLUMNS
    assert list(rows["customer_id"]) == ["bob", "carol"]
    assert list(aggregates.customer_results(engine=filled, run_id=2,
                                            segments=["VIP"])["customer_id"]) == ["alice"]
    flows = aggregates.transitions(engine=filled, from_run=1, to_run=2)
    assert {(r.source, r.target, r.customers) for r in flows.itertuples()} == {
        ("High value", "High value", 1), ("Ordinary", "Negative", 1), ("Not in run", "New", 1)}
    assert list(aggregates.cluster_profiles(engine=filled, run_id=2)["cluster"]) == [0, 1]
    rules = aggregates.rules(engine=filled, run_id=2)
    assert list(rules["lift"]) == [2.0, 1.2]
    assert rules["cluster"].isna().tolist() == [False, True]
    assert aggregates.data_span(engine=filled) == (date(2011, 1, 5), date(2011, 2, 10))


def test_customer_lookup_masks_the_phone(filled: Any) -> None:
    profile = aggregates.customer_profile(engine=filled, customer_id="alice", run_id=2)
    assert profile is not None
    assert profile["customer_class"] == "High value" and profile["first_name"] == "Alice"
    assert profile["phone"] != "+447700900123" and profile["phone"].endswith("23")
    assert aggregates.customer_profile(engine=filled, customer_id="nobody", run_id=2) is None
    purchases = aggregates.customer_purchases(engine=filled, customer_id="alice")
    assert len(purchases) == 4 and purchases["invoice"].iloc[0] == "1007"
    recs = aggregates.customer_recommendations(engine=filled, run_id=2, customer_id="bob")
    assert list(recs["reason"]) == ["bought with A"]
    assert aggregates.sample_customers(engine=filled, run_id=2, limit=2) == ["alice", "carol"]


def test_customer_contact_reads_consent_opt_out_and_phone_status_fresh(filled: Any) -> None:
    """The look-up's SMS facts come from the customer row and the opt-out list as they are now
    (a STOP arrives by webhook long after the run)."""
    from sqlalchemy import update

    from engine.store.aggregates import CUSTOMERS, OPT_OUTS

    assert aggregates.customer_contact(engine=filled, customer_id="alice") == \
        (False, "unknown", None)
    assert aggregates.customer_contact(engine=filled, customer_id="nobody") == \
        (False, "unknown", None)
    with filled.begin() as connection:
        connection.execute(update(CUSTOMERS).where(CUSTOMERS.c.customer_id == "alice")
                           .values(sms_consent=True, phone_status="invalid"))
        connection.execute(OPT_OUTS.insert().values(phone="+447700900123", opted_out=True,
                                                    source="STOP",
                                                    updated_at=ts("2011-03-02 00:00:00")))
    assert aggregates.customer_contact(engine=filled, customer_id="alice") == \
        (True, "invalid", "STOP")
    profile = aggregates.customer_profile(engine=filled, customer_id="alice", run_id=2)
    assert profile is not None and profile["opt_out"] == "STOP"
    with filled.begin() as connection:  # START: the row stays, opted_out goes false
        connection.execute(update(OPT_OUTS).values(opted_out=False, source="START"))
    assert aggregates.customer_contact(engine=filled, customer_id="alice") == \
        (True, "invalid", None)


def test_offers_and_jobs(filled: Any) -> None:
    summary = aggregates.offer_summary(engine=filled)
    assert summary["total"] == 4 and summary["dry_run"] == 1
    assert summary["delivered"] == 1 and summary["failed"] == 1
    # A 'retry' row (Twilio unreachable, a later pass sends it) is waiting, not yet attempted.
    assert summary["retry"] == 1 and summary["attempted"] == 2
    assert summary["delivery_rate"] == pytest.approx(0.5)
    assert summary["opted_out"] == 1
    jobs = aggregates.job_history(engine=filled)
    assert list(jobs["status"]) == ["failed", "succeeded"]
    assert jobs["error"].iloc[0] == "run 3 failed: boom"


def test_empty_database_gives_empty_answers(db: Any) -> None:
    assert aggregates.published_run(engine=db) is None
    assert aggregates.data_span(engine=db) is None
    assert aggregates.kpis(engine=db)["aov"] == 0.0
    assert aggregates.monthly_trends(engine=db).empty
    assert aggregates.product_summary(engine=db, non_product_codes=NON_PRODUCT).empty
    assert aggregates.offer_summary(engine=db)["delivery_rate"] is None
    assert aggregates.job_history(engine=db).empty


def test_users_are_saved_and_replaced(db: Any) -> None:
    assert save_user(engine=db, username="ann", password_hash="h1", role="analyst") is True
    assert save_user(engine=db, username="ann", password_hash="h2", role="manager") is False
    user = find_user(engine=db, username="ann")
    assert user is not None and (user.password_hash, user.role) == ("h2", "manager")
    assert [u.username for u in list_users(engine=db)] == ["ann"]
    assert find_user(engine=db, username="bob") is None
    with pytest.raises(UserError, match="role"):
        save_user(engine=db, username="bob", password_hash="h", role="admin")
