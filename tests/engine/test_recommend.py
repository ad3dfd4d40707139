"""Recommendations: never an item already bought, deterministic, reasons, empty cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engine.baskets import empty_rules, mine_rules
from engine.recommend import RECOMMENDATION_COLUMNS, SimilarLists, best_trigger, recommend
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
    recs = recommend(SHOP, CLUSTERS, empty_rules(), settings=TOP3, non_product_codes=[])
    newcomer = recs.loc[recs["customer_id"] == "f"]
    # two cluster buyers each for JAM and BREAD; JAM is also bought elsewhere; BUTTER by one
    assert list(newcomer["stock_code"]) == ["JAM", "BREAD", "BUTTER"]
    assert set(newcomer["reason"]) == {"popular with Low value customers"}


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
                                                popularity_weight=0.0),
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
