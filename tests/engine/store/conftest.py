"""Rows inserted by hand for the store's tests (SQLite and PostgreSQL): a few lines, two runs, a
failed one, offer messages and job history."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

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
from engine.store import invoice_days
from tests.conftest import session_scope

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
    # The lines went in by hand, not through a load: their summary is built as migration 0007
    # builds it for a store that already holds lines.
    with engine.begin() as connection:
        invoice_days.rebuild(connection, codes=NON_PRODUCT)


@pytest.fixture
def filled(db: Any) -> Any:
    populate(db)
    return db

