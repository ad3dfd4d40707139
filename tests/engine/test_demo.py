"""The synthetic retailer: determinism and the raw patterns the six classes and rules need."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pandas as pd
import phonenumbers
import pytest

from engine.demo import DEMO_END, generate_demo_data
from engine.phones import normalise_phone

AS_OF = pd.Timestamp(DEMO_END) + pd.Timedelta(days=1)
RECENT = AS_OF - pd.Timedelta(days=90)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = tmp_path_factory.mktemp("demo")
    result = generate_demo_data(out, customers=2000, seed=42)
    lines = pd.read_csv(result.transactions_path, dtype={"invoice": str, "stock_code": str,
                                                         "customer_id": str},
                        parse_dates=["timestamp"])
    customers = pd.read_csv(result.customers_path, dtype={"customer_id": str, "phone": str},
                            parse_dates=["signup_date"])
    assert len(lines) == result.lines and len(customers) == result.customers == 2000
    lines["amount"] = lines["quantity"] * lines["unit_price"]
    return lines, customers


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = generate_demo_data(tmp_path / "a", customers=200, seed=3)
    second = generate_demo_data(tmp_path / "b", customers=200, seed=3)
    other = generate_demo_data(tmp_path / "c", customers=200, seed=4)
    assert first.transactions_path.read_bytes() == second.transactions_path.read_bytes()
    assert first.customers_path.read_bytes() == second.customers_path.read_bytes()
    assert first.transactions_path.read_bytes() != other.transactions_path.read_bytes()


def test_layout_is_what_the_generic_preset_reads(demo) -> None:
    lines, customers = demo
    assert list(lines.columns[:8]) == ["invoice", "stock_code", "description", "quantity",
                                       "unit_price", "timestamp", "customer_id", "country"]
    assert list(customers.columns) == ["customer_id", "first_name", "phone", "signup_date",
                                       "country", "sms_consent", "timezone"]
    assert 80_000 <= len(lines) <= 130_000  # about 50 lines per customer
    assert lines["timestamp"].max() < AS_OF
    assert lines["timestamp"].min() >= pd.Timestamp("2024-01-01")


def test_contains_the_patterns_of_the_six_classes(demo) -> None:
    lines, customers = demo
    net = lines.groupby("customer_id")["amount"].sum()
    # New: signed up within the last 90 days, and buying.
    recent_signups = set(customers.loc[customers["signup_date"] >= RECENT, "customer_id"])
    assert len(recent_signups & set(net.index)) >= 40
    # Negative: returns exceed purchases.
    assert (net <= 0).sum() >= 20
    # Most Growth: last-90-day spend at least twice the earlier average per 90 days, among
    # customers who signed up long before.
    old = set(customers.loc[customers["signup_date"] < RECENT - pd.Timedelta(days=180),
                            "customer_id"])
    recent = lines[lines["timestamp"] >= RECENT].groupby("customer_id")["amount"].sum()
    earlier = lines[lines["timestamp"] < RECENT].groupby("customer_id")["amount"].sum()
    days_before = (RECENT - pd.Timestamp("2024-01-01")).days
    ramp = recent.reindex(sorted(old), fill_value=0) >= \
        2 * earlier.reindex(sorted(old), fill_value=0).clip(lower=0) / (days_before / 90)
    assert ramp.sum() >= 50
    # High / mid / low value: a wide, skewed spread of net spend among the rest.
    positive = net[net > 0]
    assert positive.quantile(0.9) > 4 * positive.quantile(0.5) > 4 * positive.quantile(0.1)


def test_returns_seasonality_long_tail_and_bundles(demo) -> None:
    lines, _ = demo
    returns = lines[lines["invoice"].str.startswith("C")]
    assert len(returns) > 500 and (returns["quantity"] < 0).all()
    assert (lines.loc[~lines["invoice"].str.startswith("C"), "quantity"] > 0).all()

    monthly = lines.groupby(lines["timestamp"].dt.to_period("M"))["invoice"].nunique()
    for year in (2024, 2025):
        peak = monthly[pd.Period(f"{year}-11")]
        assert peak > 1.3 * monthly[pd.Period(f"{year}-06")]

    sold = lines[~lines["invoice"].str.startswith("C") & (lines["stock_code"] != "POST")]
    popularity = sold.groupby("stock_code")["invoice"].nunique().sort_values(ascending=False)
    assert popularity.iloc[:30].sum() > popularity.iloc[-300:].sum()  # long tail

    baskets = sold.groupby("invoice")["stock_code"].apply(frozenset)
    pairs: dict[tuple[str, str], int] = {}
    for basket in baskets:
        for pair in combinations(sorted(basket), 2):
            pairs[pair] = pairs.get(pair, 0) + 1
    frequent = [pair for pair, count in pairs.items() if count / len(baskets) >= 0.02]
    assert len(frequent) >= 5


def test_phones_are_reserved_test_numbers_and_consent_is_about_70_percent(demo) -> None:
    _, customers = demo
    phones = customers["phone"].dropna()
    assert len(phones) > 0.9 * len(customers)
    for phone in phones.unique():
        assert phone.startswith("+447700900") or phone[5:9] == "5550" and phone[9:10] == "1", phone
        assert normalise_phone(phone, "GB") == (phone, "valid")
    us = phones[phones.str.startswith("+1")]
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(phone)) for phone in us.unique())
    assert 0.65 < customers["sms_consent"].mean() < 0.75
    assert customers["country"].nunique() >= 8


def test_a_past_offer_pass_has_a_known_effect_the_estimate_finds(tmp_path: Path) -> None:
    from engine.demo import PastOffer
    from engine.outcomes import HOLDOUT, assign_group, attribute, estimate

    offer = PastOffer()
    plain = generate_demo_data(tmp_path / "plain", customers=2000, seed=42)
    result = generate_demo_data(tmp_path / "offer", customers=2000, seed=42, past_offer=offer)
    assert plain.offer_pass_path is None and result.true_uplift == 10.0
    ledger = pd.read_csv(result.offer_pass_path, dtype={"customer_id": str})
    customers = pd.read_csv(result.customers_path, dtype={"customer_id": str, "phone": str})
    assert list(ledger.columns) == ["customer_id", "offer_id", "pass_id", "group", "decided_at"]
    assert len(ledger) == result.offer_pass_customers > 500
    # Only customers the offer could reach, split by the live passes' own assignment.
    reached = customers.set_index("customer_id").loc[ledger["customer_id"]]
    assert reached["sms_consent"].all() and reached["phone"].notna().all()
    assert ledger["group"].tolist() == [
        assign_group(c, offer.offer_id, salt=offer.salt, holdout_share=offer.holdout_share)
        for c in ledger["customer_id"]]
    assert abs((ledger["group"] == HOLDOUT).mean() - offer.holdout_share) < 0.05

    def read(path: Path) -> pd.DataFrame:
        lines = pd.read_csv(path, dtype={"invoice": str, "stock_code": str, "customer_id": str},
                            parse_dates=["timestamp"])
        return lines.assign(amount=lines["quantity"] * lines["unit_price"],
                            is_return=lines["invoice"].str.startswith("C"),
                            ts=lines["timestamp"])

    lines = read(result.transactions_path)
    # Everyone else's lines, and everything outside the window, are those of the plain data.
    untouched = ~lines["customer_id"].isin(ledger["customer_id"])
    before = read(plain.transactions_path)
    assert lines[untouched].reset_index(drop=True).equals(
        before[~before["customer_id"].isin(ledger["customer_id"])].reset_index(drop=True))
    out = estimate(attribute(ledger, lines, attribution_days=offer.attribution_days,
                             non_product_codes=["POST"])).iloc[0]
    assert out["uplift_ci_low"] <= result.true_uplift <= out["uplift_ci_high"]
    assert out["uplift_ci_low"] > 0  # large enough for the demo to show a measured effect
