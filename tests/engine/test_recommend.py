"""Recommendations: never an item already bought, deterministic, reasons, empty cases."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engine.baskets import empty_rules, mine_rules
from engine.recommend import RECOMMENDATION_COLUMNS, SimilarLists, best_trigger, recommend
from engine.recommend_signals import pool
from engine.settings import BasketSettings, RecommendSettings
from tests.engine.factories import line, lines_frame

TOP3 = RecommendSettings(top_n=3)
LOOSE = BasketSettings(min_support=0.1, min_confidence=0.1, min_lift=0.0, min_baskets=1)


def shop_lines(purchases: list[tuple[str | None, str, list[str]]]) -> pd.DataFrame:
    """(customer, invoice, stock codes) -> lines; descriptions are 'desc <code>'."""
    rows = []
    for customer, invoice, codes in purchases:
        for code in codes:
            row = line(customer, invoice, "2011-06-01 10:00", 2.0, stock_code=code)
            row["description"] = f"desc {code}"
            rows.append(row)
    return lines_frame(rows)


SHOP = shop_lines([
    ("a", "1", ["TEA", "CUP", "SAUCER"]), ("b", "2", ["TEA", "CUP"]), ("b", "3", ["JAM"]),
    ("c", "4", ["TEA", "CUP", "SAUCER", "SPOON"]), ("d", "5", ["JAM", "BREAD"]),
    ("e", "6", ["JAM", "BREAD", "BUTTER"]), (None, "7", ["TEA", "SAUCER"]),
    ("a", "C8", ["SPOON"]),  # a returned a spoon: they had it, so no spoon for a
])
CLUSTERS = pd.DataFrame({
    "customer_id": ["a", "b", "c", "d", "e", "f"], "cluster": [0, 0, 0, 1, 1, 1],
    "value_tier": ["High value"] * 3 + ["Low value"] * 3,
})


def bought_pairs(lines: pd.DataFrame) -> set[tuple[str, str]]:
    known = lines.dropna(subset=["customer_id", "stock_code"])
    return set(zip(known["customer_id"].astype(str), known["stock_code"].astype(str),
                   strict=True))


def test_recommends_only_unbought_products_with_reasons() -> None:
    rules = mine_rules(SHOP, CLUSTERS, settings=LOOSE, non_product_codes=[])
    recs = recommend(SHOP, CLUSTERS, rules, settings=TOP3, non_product_codes=[])
    assert list(recs.columns) == RECOMMENDATION_COLUMNS
    recommended = set(zip(recs["customer_id"], recs["stock_code"], strict=True))
    assert not recommended & bought_pairs(SHOP)
    assert ("a", "SPOON") not in recommended
    assert set(recs["customer_id"]) == set(CLUSTERS["customer_id"])
    for _, group in recs.groupby("customer_id"):
        assert list(group["rank"]) == list(range(1, len(group) + 1))
        assert group["score"].is_monotonic_decreasing and len(group) <= 3
    b_first = recs.loc[(recs["customer_id"] == "b") & (recs["rank"] == 1)].iloc[0]
    assert b_first["stock_code"] == "SAUCER"  # bought with TEA and CUP by everyone else
    assert b_first["reason"].startswith("often bought with desc ")
    assert b_first["description"] == "desc SAUCER"


def test_customer_without_product_purchases_gets_popularity_with_tier_reason() -> None:
    cluster_only = RecommendSettings(top_n=3, neighbour_weight=0.0, trending_weight=0.0,
                                     ease_weight=0.0)
    recs = recommend(SHOP, CLUSTERS, empty_rules(), settings=cluster_only, non_product_codes=[])
    newcomer = recs.loc[recs["customer_id"] == "f"]
    # two cluster buyers each for JAM and BREAD; JAM is also bought elsewhere; BUTTER by one
    assert list(newcomer["stock_code"]) == ["JAM", "BREAD", "BUTTER"]
    assert set(newcomer["reason"]) == {"popular with Low value customers"}


def dated_lines(purchases: list[tuple[str, str, str, list[str]]]) -> pd.DataFrame:
    rows = []
    for customer, invoice, when, codes in purchases:
        for code in codes:
            row = line(customer, invoice, when, 2.0, stock_code=code)
            row["description"] = f"desc {code}"
            rows.append(row)
    return lines_frame(rows)


def test_customers_like_you_recommends_what_similar_customers_bought_recently() -> None:
    """b shares tastes (A, B) with a, who recently bought C; x and y (other tastes) recently
    bought Z. Only the customers-like-you part is on: b gets C first, for that reason; an old
    purchase of a similar customer (D, 200 days ago) is not recent, so it scores nothing."""
    lines = dated_lines([
        ("a", "1", "2011-01-01 10:00", ["A", "B", "D"]), ("a", "2", "2011-05-20 10:00", ["C"]),
        ("b", "3", "2011-05-01 10:00", ["A", "B"]),
        ("x", "4", "2011-05-25 10:00", ["Z", "Y"]), ("y", "5", "2011-05-26 10:00", ["Z", "W"]),
    ])
    people = pd.DataFrame({"customer_id": ["a", "b", "x", "y"], "cluster": [0, 0, 0, 0]})
    only_like = RecommendSettings(top_n=3, rule_weight=0.0, cooccurrence_weight=0.0,
                                  popularity_weight=0.0, trending_weight=0.0, ease_weight=0.0,
                                  neighbour_weight=0.5, neighbours=1)
    recs = recommend(lines, people, empty_rules(), settings=only_like, non_product_codes=[],
                     as_of=date(2011, 6, 1))
    for_b = recs.loc[recs["customer_id"] == "b"]
    assert list(for_b["stock_code"]) == ["C"]
    assert list(for_b["reason"]) == ["popular with customers like you"]


def test_the_neighbour_pool_keeps_the_most_active_recent_buyers_in_order() -> None:
    recent_products = np.array([0, 3, 1, 5, 3, 0, 2])
    assert list(pool(recent_products, 10)) == [1, 2, 3, 4, 6]
    assert list(pool(recent_products, 3)) == [1, 3, 4]  # 5 and the two 3s (not 6's 2)
    assert list(pool(recent_products, 2)) == [1, 3]  # of the two 3s, the lower index


def test_customers_like_you_compares_only_the_pool() -> None:
    """As above; four customers bought in the 60 days (a one product, b, x and y two each).
    With room for three, a (whose C would be b's first) is not compared: b does not get C."""
    lines = dated_lines([
        ("a", "1", "2011-01-01 10:00", ["A", "B", "D"]), ("a", "2", "2011-05-20 10:00", ["C"]),
        ("b", "3", "2011-05-01 10:00", ["A", "B"]),
        ("x", "4", "2011-05-25 10:00", ["Z", "Y"]), ("y", "5", "2011-05-26 10:00", ["Z", "W"]),
    ])
    people = pd.DataFrame({"customer_id": ["a", "b", "x", "y"], "cluster": [0, 0, 0, 0]})
    reasons = {}
    for size in (4, 3):
        only_like = RecommendSettings(top_n=3, rule_weight=0.0, cooccurrence_weight=0.0,
                                      popularity_weight=0.0, trending_weight=0.0,
                                      ease_weight=0.0, neighbour_weight=0.5, neighbours=1,
                                      neighbour_pool=size)
        recs = recommend(lines, people, empty_rules(), settings=only_like,
                         non_product_codes=[], as_of=date(2011, 6, 1))
        reasons[size] = recs.loc[recs["customer_id"] == "b", ["stock_code", "reason"]]
    assert reasons[4].values.tolist() == [["C", "popular with customers like you"]]
    assert "C" not in set(reasons[3]["stock_code"])


def test_trending_is_what_rises_in_the_last_weeks() -> None:
    """OLD sells steadily to many (2 buyers a month before, 1 in the last month); NEW has 2
    buyers in the last month and none before: NEW trends, OLD hardly; c, who bought neither,
    gets NEW first, 'trending this month'."""
    lines = dated_lines([
        ("a", "1", "2011-04-01 10:00", ["OLD"]), ("b", "2", "2011-04-10 10:00", ["OLD"]),
        ("d", "3", "2011-05-10 10:00", ["OLD", "NEW"]), ("e", "4", "2011-05-20 10:00", ["NEW"]),
        ("c", "5", "2011-01-05 10:00", ["X"]),
    ])
    people = pd.DataFrame({"customer_id": list("abcde"), "cluster": [0] * 5})
    only_trend = RecommendSettings(top_n=2, rule_weight=0.0, cooccurrence_weight=0.0,
                                   popularity_weight=0.0, neighbour_weight=0.0, ease_weight=0.0,
                                   trending_weight=0.2, trending_days=28, trending_boost=0.0)
    recs = recommend(lines, people, empty_rules(), settings=only_trend, non_product_codes=[],
                     as_of=date(2011, 6, 1))
    for_c = recs.loc[recs["customer_id"] == "c"]
    assert list(for_c["stock_code"]) == ["NEW", "OLD"]
    assert list(for_c["reason"]) == ["trending this month"] * 2
    # NEW: 2 / (1 + 0) = 2; OLD: 1 / (1 + 2/3) = 0.6, i.e. 0.3 of NEW; times the weight
    weight = only_trend.trending_weight
    assert list(for_c["score"]) == pytest.approx([weight * 1.0, weight * 0.3])


def test_trending_boost_multiplies_each_products_score() -> None:
    """The lines of the trending test (28 days: NEW trends 1.0, OLD 0.3) and c's X triggers two
    rules: X -> OLD (confidence 0.6, lift 2: strength 0.3) and X -> NEW (0.5, 2: 0.25). Without
    the boost OLD comes first (0.2 x 0.3 against 0.2 x 0.25); with boost 1, OLD's 0.06 x 1.3 =
    0.078 falls behind NEW's 0.05 x 2 = 0.1. The reasons stay the rules'; HOT trends too but no
    part scores it for c, so the boost does not make it a candidate."""
    lines = dated_lines([
        ("a", "1", "2011-04-01 10:00", ["OLD"]), ("b", "2", "2011-04-10 10:00", ["OLD"]),
        ("d", "3", "2011-05-10 10:00", ["OLD", "NEW", "HOT"]),
        ("e", "4", "2011-05-20 10:00", ["NEW", "HOT"]), ("c", "5", "2011-01-05 10:00", ["X"]),
    ])
    people = pd.DataFrame({"customer_id": list("abcde"), "cluster": [0] * 5})
    rules = pd.DataFrame({"cluster": pd.Series([None, None], dtype=object),
                          "antecedents": [frozenset({"X"}), frozenset({"X"})],
                          "consequents": [frozenset({"OLD"}), frozenset({"NEW"})],
                          "confidence": [0.6, 0.5], "lift": [2.0, 2.0]})
    only_rules = dict(top_n=3, rule_weight=0.2, cooccurrence_weight=0.0, popularity_weight=0.0,
                      neighbour_weight=0.0, ease_weight=0.0, trending_weight=0.0,
                      trending_days=28)
    found = {}
    for boost in (0.0, 1.0):
        settings = RecommendSettings(**only_rules, trending_boost=boost)
        recs = recommend(lines, people, rules, settings=settings, non_product_codes=[],
                         as_of=date(2011, 6, 1))
        found[boost] = recs.loc[recs["customer_id"] == "c"]
    assert list(found[0.0]["stock_code"]) == ["OLD", "NEW"]
    assert list(found[0.0]["score"]) == pytest.approx([0.06, 0.05])
    assert list(found[1.0]["stock_code"]) == ["NEW", "OLD"]
    assert list(found[1.0]["score"]) == pytest.approx([0.1, 0.078])
    assert set(found[1.0]["reason"]) == {"often bought with desc X"}


def test_deterministic_whatever_the_line_order() -> None:
    rules = mine_rules(SHOP, CLUSTERS, settings=LOOSE, non_product_codes=[])
    first = recommend(SHOP, CLUSTERS, rules, settings=TOP3, non_product_codes=[])
    shuffled = SHOP.sample(frac=1.0, random_state=3).reset_index(drop=True)
    again = recommend(shuffled, CLUSTERS.iloc[::-1], rules, settings=TOP3, non_product_codes=[])
    pd.testing.assert_frame_equal(first, again)


def test_cluster_without_rules_falls_back_to_all_customer_rules() -> None:
    rules = mine_rules(SHOP, CLUSTERS, settings=LOOSE, non_product_codes=[])
    only_everyone = rules.loc[rules["cluster"].isna()].reset_index(drop=True)
    recs = recommend(SHOP, CLUSTERS, only_everyone,
                     settings=RecommendSettings(top_n=3, cooccurrence_weight=0.0,
                                                popularity_weight=0.0, neighbour_weight=0.0,
                                                trending_weight=0.0),
                     non_product_codes=[])
    assert len(recs) > 0 and recs["reason"].str.startswith("often bought with").all()


def test_empty_inputs_give_an_empty_frame() -> None:
    empty = recommend(SHOP.iloc[:0], CLUSTERS, empty_rules(), settings=TOP3,
                      non_product_codes=[])
    assert empty.empty and list(empty.columns) == RECOMMENDATION_COLUMNS
    nobody = recommend(SHOP, CLUSTERS.iloc[:0], empty_rules(), settings=TOP3,
                       non_product_codes=[])
    assert nobody.empty and list(nobody.columns) == RECOMMENDATION_COLUMNS


def test_non_product_codes_are_never_recommended() -> None:
    lines = shop_lines([("a", "1", ["TEA", "POST"]), ("b", "2", ["POST", "CUP"])])
    recs = recommend(lines, CLUSTERS, empty_rules(), settings=TOP3, non_product_codes=["POST"])
    assert "POST" not in set(recs["stock_code"])


purchase = st.tuples(st.sampled_from(["a", "b", "c", "d", "e", None]),
                     st.integers(min_value=1, max_value=8),
                     st.lists(st.sampled_from([f"P{i}" for i in range(8)]), min_size=1,
                              max_size=5, unique=True))


@hypothesis_settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(purchase, min_size=1, max_size=25), st.integers(min_value=1, max_value=5))
def test_never_recommends_what_the_customer_has(purchases: list, top_n: int) -> None:
    lines = shop_lines([(customer, f"I{invoice}", codes) for customer, invoice, codes in purchases])
    rules = mine_rules(lines, CLUSTERS, settings=LOOSE, non_product_codes=[])
    recs = recommend(lines, CLUSTERS, rules, settings=RecommendSettings(top_n=top_n),
                     non_product_codes=[])
    recommended = set(zip(recs["customer_id"], recs["stock_code"], strict=True))
    assert not recommended & bought_pairs(lines)
    assert (recs.groupby("customer_id").size() <= top_n).all()
    assert not recs.duplicated(["customer_id", "stock_code"]).any()


@hypothesis_settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_best_trigger_is_the_most_similar_owned_product_lowest_index_on_ties(seed: int) -> None:
    from scipy import sparse

    rng = np.random.default_rng(seed)
    n = 12
    # similarities from a few levels, so ties happen; zero = not a neighbour
    neighbours = sparse.csr_matrix(rng.choice([0.0, 0.0, 0.25, 0.5, 1.0], size=(n, n)))
    owned = rng.random((6, n)) < 0.4
    rows, cols = np.nonzero(np.ones((6, n), dtype=bool))
    dense = neighbours.toarray()
    strengths = owned[rows] * dense[:, cols].T  # pair x owned product
    pairs = strengths.max(axis=1) > 0  # only pairs some owned product points to
    found = best_trigger(rows[pairs], cols[pairs], owned, SimilarLists.of(neighbours))
    expected = strengths[pairs].argmax(axis=1)  # the first of the largest: the lowest index
    assert found.tolist() == expected.tolist()
