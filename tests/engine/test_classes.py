"""The six classes: each rule by hand, precedence, one class per customer, transitions."""

from __future__ import annotations

from datetime import date

import pandas as pd
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engine.classes import CLASSES, class_transitions, classify, growth_frame
from engine.pipeline import segment
from engine.rfm import coded_customer_lines
from engine.settings import ClassSettings, Settings
from tests.engine.factories import AS_OF, line, lines_frame, population

TIERS = ["High value", "Mid value", "Low value"]


def _classify(rows, tiers, customers=None, **overrides):
    history = lines_frame(rows)
    ids = sorted({row["customer_id"] for row in rows if row["customer_id"]})
    net = history.assign(net=history["amount"]).groupby("customer_id")["net"].sum()
    segments = pd.DataFrame({"customer_id": ids, "monetary": [net[i] for i in ids],
                             "value_tier": [tiers[i] for i in ids]})
    classes = classify(segments, history, customers, as_of=AS_OF,
                       settings=ClassSettings(**overrides), tier_names=TIERS)
    return dict(zip(ids, classes, strict=True))


def test_each_class_by_hand() -> None:
    rows = [
        line("new", "1", "2011-11-20", 50.0),                      # first purchase 42 days ago
        line("neg", "2", "2011-03-01", 20.0), line("neg", "C3", "2011-03-02", -20.0),
        line("grow", "4", "2011-01-01", 100.0),                   # ~2.7 earlier periods
        line("grow", "5", "2011-11-15", 80.0),                     # 80 >= 2 * 100/2.7
        line("flat", "6", "2011-01-01", 300.0), line("flat", "7", "2011-11-15", 80.0),
        line("mid", "8", "2011-05-01", 40.0),
        line("low", "9", "2011-04-01", 5.0),
    ]
    tiers = {"new": "Low value", "neg": "High value", "grow": "Low value", "flat": "High value",
             "mid": "Mid value", "low": "Low value"}
    assert _classify(rows, tiers) == {"new": "New", "neg": "Negative", "grow": "Most Growth",
                                      "flat": "High value", "mid": "Ordinary",
                                      "low": "Below Average"}


def test_known_sign_up_date_wins_over_first_purchase() -> None:
    rows = [line("a", "1", "2011-12-01", 50.0), line("b", "2", "2011-01-05", 50.0)]
    customers = pd.DataFrame({"customer_id": ["a", "b"],
                              "signup_date": pd.to_datetime(["2010-01-01", "2011-12-20"])})
    classes = _classify(rows, {"a": "Mid value", "b": "Mid value"}, customers)
    # a signed up long ago and only started buying: growth; b signed up 12 days ago: New.
    assert classes == {"a": "Most Growth", "b": "New"}


def test_thresholds_come_from_settings() -> None:
    rows = [line("a", "1", "2011-08-01", 50.0)]  # first purchase 153 days before as_of
    assert _classify(rows, {"a": "Mid value"}) == {"a": "Ordinary"}
    assert _classify(rows, {"a": "Mid value"}, new_days=200) == {"a": "New"}
    assert _classify(rows, {"a": "Mid value"}, growth_days=180) == {"a": "Most Growth"}


def test_growth_frame_periods_have_a_minimum_of_one() -> None:
    frame = growth_frame(lines_frame([line("a", "1", "2011-09-20", 10.0),
                                      line("a", "2", "2011-12-01", 40.0)]),
                         as_of=date(2012, 1, 1), growth_days=90)
    row = frame.loc["a"]
    assert (row.recent_spend, row.earlier_spend, row.earlier_periods) == (40.0, 10.0, 1.0)


@hypothesis_settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 25), st.integers(0, 364), st.integers(-30, 400)),
                min_size=1, max_size=80),
       st.sampled_from(TIERS))
def test_every_customer_gets_exactly_one_class(rows, tier) -> None:
    lines = [line(f"c{c}", f"{'C' if amount < 0 else ''}{c}-{day}",
                  pd.Timestamp("2011-01-01") + pd.Timedelta(days=day), float(amount or 1))
             for c, day, amount in rows]
    ids = sorted({f"c{c}" for c, _, _ in rows})
    classes = _classify(lines, dict.fromkeys(ids, tier))
    assert set(classes) == set(ids)
    assert set(classes.values()) <= set(CLASSES)


def test_every_class_occurs_in_the_synthetic_population() -> None:
    result = segment(population(), None, Settings(), as_of=AS_OF)
    counts = result.segments["customer_class"].value_counts()
    assert set(counts.index) == set(CLASSES), counts.to_dict()
    assert result.segments["customer_id"].is_unique


def test_transitions_count_moves_and_absent_customers() -> None:
    before = pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
                           "customer_class": ["New", "New", "Ordinary", "Below Average"]})
    after = pd.DataFrame({"customer_id": ["a", "b", "c", "e"],
                          "customer_class": ["Ordinary", "New", "Ordinary", "New"]})
    moves = class_transitions(before, after)
    assert moves.to_dict(orient="records") == [
        {"from_class": "New", "to_class": "New", "customers": 1},
        {"from_class": "New", "to_class": "Ordinary", "customers": 1},
        {"from_class": "Ordinary", "to_class": "Ordinary", "customers": 1},
        {"from_class": "Below Average", "to_class": "(none)", "customers": 1},
        {"from_class": "(none)", "to_class": "New", "customers": 1},
    ]
    assert moves["customers"].sum() == 5


def test_growth_frame_from_already_coded_lines_is_the_same() -> None:
    lines = population(seed=2)
    codes = Settings().ingest.non_product_codes
    coded = coded_customer_lines(lines, codes)
    pd.testing.assert_frame_equal(
        growth_frame(lines, as_of=AS_OF, growth_days=90, non_product_codes=codes, coded=coded),
        growth_frame(lines, as_of=AS_OF, growth_days=90, non_product_codes=codes))
