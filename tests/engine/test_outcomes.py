"""Holdout assignment, attribution and uplift estimates: hand-computed cases, published reference
figures, property tests, and a coverage simulation of the whole estimator."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engine.outcomes import (
    EXTRA_FIELDS,
    HOLDOUT,
    OUTCOME_FIELDS,
    TREATMENT,
    OutcomeInputError,
    assign_group,
    attribute,
    check_attribution_days,
    check_holdout_share,
    conversion_curve,
    estimate,
    holdout_draw,
    minimum_detectable_effect,
    uplift_interval,
    verdict,
    welch_interval,
)
from tests.engine.factories import line, lines_frame

ids = st.text(min_size=1, max_size=12)


# Assignment ----------------------------------------------------------------------------------

def test_the_draw_is_pinned_so_groups_never_move_between_versions() -> None:
    # A change here would move customers between groups of offers already running.
    assert holdout_draw("100001", "spring-sale", salt="segmint") == pytest.approx(
        PINNED_DRAW, abs=1e-15)


PINNED_DRAW = 0.9250427158480348  # sha256 of "segmint\x1fspring-sale\x1f100001", first 8 bytes


def test_the_draw_does_not_depend_on_the_process_hash_seed() -> None:
    code = ("from engine.outcomes import holdout_draw;"
            "print(repr(holdout_draw('100001', 'spring-sale', salt='segmint')))")
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        seen.add(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                capture_output=True, text=True).stdout.strip())
    assert seen == {repr(holdout_draw("100001", "spring-sale", salt="segmint"))}


@hypothesis_settings(max_examples=200, deadline=None)
@given(customer=ids, offer=ids, salt=ids, share=st.floats(0.0, 0.5))
def test_assignment_is_deterministic_and_follows_the_draw(customer: str, offer: str, salt: str,
                                                          share: float) -> None:
    draw = holdout_draw(customer, offer, salt=salt)
    assert 0.0 <= draw < 1.0
    group = assign_group(customer, offer, salt=salt, holdout_share=share)
    assert group == assign_group(customer, offer, salt=salt, holdout_share=share)
    assert group == (HOLDOUT if draw < share else TREATMENT)


@hypothesis_settings(max_examples=100, deadline=None)
@given(customer=ids, offer=ids, salt=ids, low=st.floats(0.0, 0.5), high=st.floats(0.0, 0.5))
def test_a_larger_share_keeps_every_earlier_holdout(customer: str, offer: str, salt: str,
                                                    low: float, high: float) -> None:
    low, high = sorted((low, high))
    if assign_group(customer, offer, salt=salt, holdout_share=low) == HOLDOUT:
        assert assign_group(customer, offer, salt=salt, holdout_share=high) == HOLDOUT


@pytest.mark.parametrize("share", [0.0, 0.05, 0.1, 0.25, 0.5])
def test_the_holdout_share_is_met_within_sampling_tolerance(share: float) -> None:
    n = 20_000
    groups = [assign_group(str(100000 + i), "winter", salt="s1", holdout_share=share)
              for i in range(n)]
    observed = groups.count(HOLDOUT) / n
    assert abs(observed - share) <= 4 * np.sqrt(share * (1 - share) / n) + 1e-12


def test_offers_and_salts_draw_independent_groups() -> None:
    customers = [str(100000 + i) for i in range(4000)]

    def holdouts(offer: str, salt: str) -> set[str]:
        return {c for c in customers
                if assign_group(c, offer, salt=salt, holdout_share=0.5) == HOLDOUT}

    a, b, c = holdouts("one", "s"), holdouts("two", "s"), holdouts("one", "t")
    # Independent halves overlap on about a quarter of the customers, not all or none.
    for other in (b, c):
        assert abs(len(a & other) / len(customers) - 0.25) < 0.03


@pytest.mark.parametrize("share", [-0.01, 0.51, 1.0, float("nan"), "0.1", None])
def test_a_holdout_share_out_of_range_is_one_line(share: object) -> None:
    with pytest.raises(OutcomeInputError) as caught:
        check_holdout_share(share)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value) and "holdout_share" in str(caught.value)


@pytest.mark.parametrize("days", [0, -3, 366, 1.5, True])
def test_an_attribution_window_out_of_range_is_one_line(days: object) -> None:
    with pytest.raises(OutcomeInputError) as caught:
        check_attribution_days(days)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value) and "attribution_days" in str(caught.value)


# Attribution ---------------------------------------------------------------------------------

def _ledger(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "offer_id", "group", "decided_at"])


def test_attribution_by_hand() -> None:
    # decided_at is aware UTC (the ledger's); lines are naive, taken to be UTC.
    ledger = _ledger([
        ("A", "spring", TREATMENT, "2025-06-01 12:00+00:00"),
        ("B", "spring", HOLDOUT, "2025-06-01 12:00+00:00"),
        ("C", "spring", TREATMENT, "2025-06-01 12:00+00:00"),
        ("D", "spring", HOLDOUT, "2025-06-01 14:00+02:00"),  # 12:00 UTC
        ("A", "summer", TREATMENT, "2025-06-20 09:00+00:00"),
    ])
    lines = lines_frame([
        line("A", "1", "2025-06-01 11:00", 50.0),  # before the send
        line("A", "2", "2025-06-01 12:00", 40.0),  # at the send: the window is open there
        line("A", "3", "2025-06-05 10:00", 30.0),
        line("A", "C4", "2025-06-07 10:00", -5.0),  # a return subtracts, is no conversion
        line("A", "5", "2025-06-15 12:00", 7.0),  # the window's last moment is in
        line("A", "6", "2025-06-15 12:01", 100.0),  # just after: out
        line("B", "C7", "2025-06-03 10:00", -3.0),  # only a return: not converted
        line("D", "8", "2025-06-02 12:00", 9.0, stock_code="POST"),  # postage is no purchase
        line("D", "9", "2025-06-04 12:00", 12.5),
        line(None, "10", "2025-06-04 12:00", 99.0),  # no customer id: never counts
    ])
    out = attribute(ledger, lines, attribution_days=14, non_product_codes=["POST"])
    assert out["converted"].tolist() == [True, False, False, True, False]
    assert out["revenue_after"].tolist() == [32.0, -3.0, 0.0, 12.5, 0.0]
    assert out["days_to_convert"].iloc[0] == pytest.approx((4 * 24 - 2) / 24)
    assert out["days_to_convert"].iloc[3] == pytest.approx(3.0)
    assert out["days_to_convert"].iloc[[1, 2, 4]].isna().all()
    # The summer offer of A: 2025-06-20 09:00 + 14 days holds no line of A.
    assert list(out.columns[:4]) == ["customer_id", "offer_id", "group", "decided_at"]


moments = st.integers(0, 40 * 24).map(lambda hours: pd.Timestamp("2025-01-01") +
                                     pd.Timedelta(hours=hours))


@hypothesis_settings(max_examples=60, deadline=None)
@given(decided=st.lists(st.tuples(st.sampled_from("ABC"), moments), min_size=1, max_size=6),
       bought=st.lists(st.tuples(st.sampled_from("ABCD"), moments,
                                 st.floats(-50, 50, allow_nan=False).filter(lambda v: v != 0)),
                       max_size=25),
       days=st.integers(1, 20))
def test_attribution_equals_a_brute_force_reading(decided: list[tuple[str, pd.Timestamp]],
                                                  bought: list[tuple[str, pd.Timestamp, float]],
                                                  days: int) -> None:
    ledger = pd.DataFrame([(c, f"o{i}", TREATMENT, t) for i, (c, t) in enumerate(decided)],
                          columns=["customer_id", "offer_id", "group", "decided_at"])
    lines = lines_frame([line(c, f"{i}", t, v) for i, (c, t, v) in enumerate(bought)])
    out = attribute(ledger, lines, attribution_days=days)
    for row in out.itertuples():
        end = row.decided_at + pd.Timedelta(days=days)
        inside = [(v, t) for c, t, v in bought if c == row.customer_id
                  and row.decided_at < t <= end]
        assert row.converted == any(v > 0 for v, _ in inside)
        assert row.revenue_after == pytest.approx(round(sum(v for v, _ in inside), 2))
        first = min((t for v, t in inside if v > 0), default=None)
        expected = (first - row.decided_at) / pd.Timedelta(days=1) if first else np.nan
        assert row.days_to_convert == pytest.approx(expected, nan_ok=True)


def test_conversion_curve_by_hand() -> None:
    frame = pd.DataFrame({"group": [TREATMENT] * 4 + [HOLDOUT] * 2,
                          "days_to_convert": [0.5, 2.0, np.nan, 3.5, 3.0, np.nan]})
    curve = conversion_curve(frame, attribution_days=4)
    treated = curve[curve["group"] == TREATMENT]["rate"].tolist()
    held = curve[curve["group"] == HOLDOUT]["rate"].tolist()
    assert treated == [0.0, 0.25, 0.5, 0.5, 0.75]
    assert held == [0.0, 0.0, 0.0, 0.5, 0.5]


# Estimates -----------------------------------------------------------------------------------

def test_newcombe_interval_matches_the_published_figures() -> None:
    # Newcombe (1998), Stat. Med. 17:873-890, Table II, example (a): 56/70 - 48/80,
    # method 10 (hybrid score, no continuity correction): 0.0524 to 0.3339.
    low, high = uplift_interval(np.array([56]), np.array([70]), np.array([48]), np.array([80]))
    assert low[0] == pytest.approx(0.0524, abs=5e-5)
    assert high[0] == pytest.approx(0.3339, abs=5e-5)
    # Example (h): 0/10 - 0/10: -0.2775 to 0.2775.
    low, high = uplift_interval(np.array([0]), np.array([10]), np.array([0]), np.array([10]))
    assert (low[0], high[0]) == pytest.approx((-0.2775, 0.2775), abs=5e-5)


def test_welch_interval_equals_scipys() -> None:
    from scipy import stats

    treated = np.array([0.0, 0.0, 12.5, 40.0, 3.0, 0.0, 19.9])
    held = np.array([0.0, 5.0, 0.0, 8.0])
    low, high = welch_interval(np.array([treated.mean()]), np.array([treated.var(ddof=1)]),
                               np.array([len(treated)]), np.array([held.mean()]),
                               np.array([held.var(ddof=1)]), np.array([len(held)]))
    expected = stats.ttest_ind(treated, held, equal_var=False).confidence_interval(0.95)
    assert (low[0], high[0]) == pytest.approx((expected.low, expected.high), rel=1e-9)


@pytest.mark.parametrize(("n_t", "n_h", "baseline"),
                         [(900, 100, 0.10), (5000, 5000, 0.02), (180, 20, 0.3), (50, 50, 0.0)])
def test_mde_agrees_with_statsmodels_power(n_t: int, n_h: int, baseline: float) -> None:
    from statsmodels.stats.power import NormalIndPower

    mde = minimum_detectable_effect(np.array([n_t]), np.array([n_h]), np.array([baseline]))[0]
    effect = 2 * np.arcsin(np.sqrt(baseline + mde)) - 2 * np.arcsin(np.sqrt(baseline))
    power = NormalIndPower().power(effect_size=effect, nobs1=n_t, alpha=0.05, ratio=n_h / n_t,
                                   alternative="two-sided")
    assert power == pytest.approx(0.80, abs=1e-4)


def test_estimate_by_hand() -> None:
    frame = pd.DataFrame({
        "offer_id": ["x"] * 6 + ["y"] * 3,
        "customer_class": ["High value", "Most Growth"] * 3 + ["High value"] * 3,
        "group": [TREATMENT, TREATMENT, TREATMENT, TREATMENT, HOLDOUT, HOLDOUT,
                  TREATMENT, TREATMENT, TREATMENT],
        "converted": [True, True, False, False, True, False, True, False, False],
        "revenue_after": [10.0, 20.0, 0.0, 0.0, 6.0, 0.0, 5.0, 0.0, 0.0],
    })
    out = estimate(frame).set_index("offer_id")
    assert list(out.reset_index().columns) == OUTCOME_FIELDS + EXTRA_FIELDS
    x = out.loc["x"]
    assert (x["treatment"], x["holdout"]) == (4, 2)
    assert (x["conversion_treatment"], x["conversion_holdout"]) == (0.5, 0.5)
    assert x["uplift"] == 0.0
    assert x["revenue_per_customer_treatment"] == 7.5
    assert x["revenue_per_customer_holdout"] == 3.0
    assert x["incremental_revenue"] == pytest.approx((7.5 - 3.0) * 4)
    low, high = uplift_interval(np.array([2]), np.array([4]), np.array([1]), np.array([2]))
    assert (x["uplift_ci_low"], x["uplift_ci_high"]) == pytest.approx((low[0] * 100,
                                                                       high[0] * 100))
    assert x["verdict"].startswith("no measurable effect: +0.0 points")
    y = out.loc["y"]  # no holdout: nothing to compare, never a crash
    assert (y["treatment"], y["holdout"]) == (3, 0)
    assert np.isnan(y["uplift_ci_low"]) and np.isnan(y["mde"])
    assert y["verdict"] == "no holdout group yet: nothing to compare"
    by_class = estimate(frame, by=["offer_id", "customer_class"])
    assert by_class[["offer_id", "customer_class", "treatment", "holdout"]].values.tolist() == [
        ["x", "High value", 2, 1], ["x", "Most Growth", 2, 1], ["y", "High value", 3, 0]]


def _row(**values: float) -> SimpleNamespace:
    defaults = {"treatment": 1000, "holdout": 100, "customers_needed": float("nan"), "mde": 9.9}
    return SimpleNamespace(**{**defaults, **values})


def test_verdict_texts() -> None:
    assert verdict(_row(uplift=6.1, uplift_ci_low=2.0, uplift_ci_high=10.2,
                        incremental_revenue=1240.4)) == (
        "+6.1 points (2.0 to 10.2), about £1,240 more")
    assert verdict(_row(uplift=2.5, uplift_ci_low=-1.5, uplift_ci_high=6.0,
                        incremental_revenue=300.0, customers_needed=2150.0)) == (
        "no measurable effect yet: about 2,150 more customers needed to tell +2.5 points from "
        "chance (+2.5 points (-1.5 to 6.0))")
    assert verdict(_row(uplift=-4.0, uplift_ci_low=-7.0, uplift_ci_high=-1.0,
                        incremental_revenue=-80.0)).endswith("about £80 less")
    assert verdict(_row(uplift=-1.0, uplift_ci_low=-5.0, uplift_ci_high=3.0,
                        incremental_revenue=-8.0)) == (
        "no measurable effect: -1.0 points (-5.0 to 3.0); with these groups only an uplift "
        "above 9.9 points would show")


# The estimator against the truth -------------------------------------------------------------

def simulate_offers(seed: int, *, offers: int, customers: int, holdout_share: float,
                    rate_holdout: float, rate_treatment: float) -> tuple[pd.DataFrame,
                                                                         pd.DataFrame]:
    """A ledger of `offers` independent offers and the purchase lines that followed them: each
    customer converts with the rate of their group, on a day within the window; some buy again
    just after it (which must not count)."""
    rng = np.random.default_rng(seed)
    offer = np.repeat([f"o{i}" for i in range(offers)], customers)
    customer = np.tile([str(100000 + i) for i in range(customers)], offers)
    group = np.array([assign_group(c, o, salt=str(seed), holdout_share=holdout_share)
                      for c, o in zip(customer, offer, strict=True)])
    decided = pd.Timestamp("2025-03-01 10:00") + pd.to_timedelta(
        rng.integers(0, 30, len(offer)), unit="D")
    ledger = pd.DataFrame({"customer_id": [f"{o}-{c}" for o, c in zip(offer, customer,
                                                                         strict=True)],
                           "offer_id": offer, "group": group, "decided_at": decided})
    rate = np.where(group == HOLDOUT, rate_holdout, rate_treatment)
    converts = rng.random(len(offer)) < rate
    later = rng.random(len(offer)) < 0.2
    ts = np.concatenate([
        decided[converts] + pd.to_timedelta(rng.uniform(0.01, 14.0, converts.sum()), unit="D"),
        decided[later] + pd.to_timedelta(rng.uniform(14.01, 30.0, later.sum()), unit="D"),
    ])
    who = np.concatenate([ledger["customer_id"][converts], ledger["customer_id"][later]])
    lines = pd.DataFrame({"customer_id": who, "ts": ts,
                          "amount": rng.gamma(2.0, 20.0, len(who)).round(2),
                          "is_return": False})
    return ledger, lines


def test_the_95_interval_covers_the_true_uplift_in_93_to_97_percent_of_simulations() -> None:
    truth = 5.0  # points: 10 % of the holdout buy within the window, 15 % of the treated
    ledger, lines = simulate_offers(20251203, offers=1000, customers=400, holdout_share=0.2,
                                    rate_holdout=0.10, rate_treatment=0.15)
    out = estimate(attribute(ledger, lines, attribution_days=14))
    assert len(out) == 1000
    covered = ((out["uplift_ci_low"] <= truth) & (truth <= out["uplift_ci_high"])).mean()
    assert 0.93 <= covered <= 0.97, covered
    assert out["uplift"].mean() == pytest.approx(truth, abs=0.3)  # and it is unbiased
