"""Offer templates that target a churn-risk band and a minimum 365-day CLV (win-back)."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import Person, people, publish_run

from engine.models import CustomerClv
from engine.settings import OfferTemplate, Settings
from engine.store.offers import OfferTarget
from notifications.offers import send_offers
from notifications.templates import targets
from tests.conftest import session_scope
from tests.notifications import ledger

WIN_BACK = OfferTemplate(offer_id="win-back", target_classes=["High value"], churn_risk=["high"],
                         min_clv_365d=50.0, body="We miss you {first_name}: code {offer_code}. "
                         "Reply STOP to opt out.")


def target(churn_risk: str | None, clv: float | None, customer_class: str = "High value") \
        -> OfferTarget:
    return OfferTarget(customer_id="C1", customer_class=customer_class, first_name=None,
                       phone=None, phone_status="unknown", sms_consent=True, timezone=None,
                       product=None, churn_risk=churn_risk, clv_365d=clv)


def test_a_template_matches_class_band_and_minimum_clv() -> None:
    assert targets(WIN_BACK, target("high", 50.0))
    assert not targets(WIN_BACK, target("high", 49.9))
    assert not targets(WIN_BACK, target("medium", 500.0))
    assert not targets(WIN_BACK, target(None, None))  # no CLV in the run: never a win-back
    assert not targets(WIN_BACK, target("high", 500.0, customer_class="New"))
    plain = OfferTemplate(offer_id="vip", target_classes=["High value"], body="x")
    assert targets(plain, target(None, None)) and not plain.needs_clv


def _store_clv(db, run_id: int, rows: dict[str, tuple[str, float]]) -> None:  # type: ignore[no-untyped-def]
    with session_scope(db) as session:
        for customer_id, (risk, value) in rows.items():
            session.add(CustomerClv(
                run_id=run_id, customer_id=customer_id, frequency=3, recency=10.0, T=40.0,
                p_alive=0.1, expected_purchases_90d=0.1, expected_purchases_365d=0.3,
                expected_order_value=40.0, clv_365d=value, churn_risk=risk, history="full",
                order_value_source="gamma_gamma"))


def test_a_win_back_pass_reaches_only_valuable_customers_about_to_leave(
        db, settings: Settings) -> None:
    persons: list[Person] = people(4)
    run_id = publish_run(db, persons)
    _store_clv(db, run_id, {"C0001": ("high", 120.0), "C0002": ("high", 10.0),
                            "C0003": ("low", 300.0)})  # C0004: no CLV row
    only_win_back = settings.model_copy(update={"notifications": settings.notifications
                                                .model_copy(update={"templates": [WIN_BACK]})})
    # At midday: the default settings keep quiet hours, and at night nobody is reached.
    summary = send_offers(db, only_win_back, dry_run=True,
                          now=datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    assert summary.dry_runs == 1
    assert [row.customer_id for row in ledger.all_messages(db)] == ["C0001"]
