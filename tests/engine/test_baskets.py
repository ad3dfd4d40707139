"""Basket rules: what counts as a basket, empty cases, and equality with mlxtend's own results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mlxtend.frequent_patterns import association_rules, fpgrowth
from mlxtend.preprocessing import TransactionEncoder

from engine.baskets import RULE_COLUMNS, basket_matrix, distinct_rows, frequent_itemsets, mine_rules
from engine.settings import BasketSettings
from tests.engine.factories import line, lines_frame
from tests.engine.realdata import read_online_retail

NON_PRODUCT = ["POST", "M"]
LOOSE = BasketSettings(min_support=0.1, min_confidence=0.1, min_lift=0.0, max_len=3,
                       max_basket_size=5, min_baskets=2)


def baskets_frame(baskets: dict[str, tuple[str | None, list[str]]]) -> pd.DataFrame:
    """invoice -> (customer, stock codes), one line per product."""
    rows = [line(customer, invoice, "2011-05-01 10:00", 1.0, stock_code=code)
            for invoice, (customer, codes) in baskets.items() for code in codes]
    return lines_frame(rows)


def assignments(clusters: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(clusters), "cluster": list(clusters.values())})


def reference_rules(baskets: list[list[str]], settings: BasketSettings) -> pd.DataFrame:
    """mlxtend on a plain dense boolean table: the definition our sparse path must match."""
    encoder = TransactionEncoder()
    dense = pd.DataFrame(encoder.fit(baskets).transform(baskets), columns=encoder.columns_)
    itemsets = fpgrowth(dense, min_support=settings.min_support, use_colnames=True,
                        max_len=settings.max_len)
    rules = association_rules(itemsets, num_itemsets=len(dense), metric="confidence",
                              min_threshold=settings.min_confidence)
    rules = rules.loc[rules["lift"] >= settings.min_lift]
    return pd.DataFrame({
        "antecedents": [tuple(sorted(side)) for side in rules["antecedents"]],
        "consequents": [tuple(sorted(side)) for side in rules["consequents"]],
        **{metric: rules[metric].to_numpy(dtype=float) for metric in RULE_COLUMNS[3:]},
    })


def assert_same_rules(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    key = ["antecedents", "consequents"]
    assert len(ours) == len(reference) > 0
    assert set(map(tuple, ours[key].to_numpy())) == set(map(tuple, reference[key].to_numpy()))
    joined = ours.merge(reference, on=key, suffixes=("", "_ref"))
    for metric in RULE_COLUMNS[3:]:
        expected = joined[f"{metric}_ref"].replace(np.inf, np.nan)
        assert np.allclose(joined[metric], expected, rtol=1e-9, atol=1e-12, equal_nan=True), metric


SHOP = {
    "1": ("a", ["A", "B", "POST"]), "2": ("a", ["A", "B", "C"]), "3": ("b", ["A", "C"]),
    "4": ("b", ["B", "C", "M"]), "5": ("c", ["A", "B"]), "6": (None, ["A", "B", "C", "D"]),
    "7": ("c", ["D", "E", "F", "G", "H", "A"]),  # six products: above max_basket_size
}


def test_columns_sorted_tuples_and_all_customer_rules() -> None:
    rules = mine_rules(baskets_frame(SHOP), assignments({"a": 0, "b": 0, "c": 1}),
                       settings=LOOSE, non_product_codes=NON_PRODUCT)
    assert list(rules.columns) == RULE_COLUMNS
    # cluster 1 keeps one basket once the oversized one is left out: below min_baskets
    assert set(rules["cluster"].map(lambda c: -1 if c is None else c)) == {-1, 0}
    for side in pd.concat([rules["antecedents"], rules["consequents"]]):
        assert isinstance(side, tuple) and list(side) == sorted(side)
    items = {item for side in rules["antecedents"] for item in side}
    assert not items & {"POST", "M"}
    assert "E" not in items  # only in the oversized basket


def test_all_customer_rules_equal_mlxtend_on_the_same_baskets() -> None:
    rules = mine_rules(baskets_frame(SHOP), assignments({"a": 0}), settings=LOOSE,
                       non_product_codes=NON_PRODUCT)
    baskets = [["A", "B"], ["A", "B", "C"], ["A", "C"], ["B", "C"], ["A", "B"],
               ["A", "B", "C", "D"]]
    everyone = rules.loc[rules["cluster"].isna()].drop(columns="cluster")
    assert_same_rules(everyone, reference_rules(baskets, LOOSE))


def test_cluster_rules_use_only_its_customers_and_skip_returns() -> None:
    shop = dict(SHOP)
    shop["C9"] = ("b", ["D"])  # a return: never a basket
    rules = mine_rules(baskets_frame(shop), assignments({"a": 0, "b": 0, "c": 1}),
                       settings=LOOSE, non_product_codes=NON_PRODUCT)
    cluster0 = rules.loc[rules["cluster"] == 0].drop(columns="cluster")
    assert_same_rules(cluster0, reference_rules([["A", "B"], ["A", "B", "C"], ["A", "C"],
                                                 ["B", "C"]], LOOSE))


def test_small_cluster_single_item_baskets_and_no_itemsets_give_empty_frames() -> None:
    strict = LOOSE.model_copy(update={"min_baskets": 3})
    rules = mine_rules(baskets_frame(SHOP), assignments({"a": 0, "b": 0, "c": 1}),
                       settings=strict, non_product_codes=NON_PRODUCT)
    assert 1 not in set(rules["cluster"].dropna())  # cluster 1 has two baskets (one oversized)

    singles = baskets_frame({str(i): ("a", [f"P{i}"]) for i in range(30)})
    empty = mine_rules(singles, assignments({"a": 0}), settings=LOOSE, non_product_codes=[])
    assert empty.empty and list(empty.columns) == RULE_COLUMNS

    rare = BasketSettings(min_support=0.9, min_baskets=1)
    none = mine_rules(baskets_frame(SHOP), assignments({"zz": 7}), settings=rare,
                      non_product_codes=NON_PRODUCT)
    assert none.empty and list(none.columns) == RULE_COLUMNS


def test_no_customer_column_values_and_empty_assignments() -> None:
    rules = mine_rules(baskets_frame(SHOP), assignments({}), settings=LOOSE,
                       non_product_codes=NON_PRODUCT)
    assert set(rules["cluster"].map(lambda c: c is None)) == {True}


def test_conviction_is_nan_where_infinite() -> None:
    shop = {str(i): ("a", ["A", "B"]) for i in range(5)}
    rules = mine_rules(baskets_frame(shop), assignments({"a": 0}), settings=LOOSE,
                       non_product_codes=[])
    assert (rules["confidence"] == 1.0).all()
    assert rules["conviction"].isna().all()
    assert all(math.isfinite(value) for value in rules["lift"])


@pytest.mark.realdata
@pytest.mark.slow
def test_real_cluster_rules_equal_mlxtend(real_data: Path) -> None:
    lines = read_online_retail(real_data)
    codes = ["POST", "DOT", "M", "D", "C2", "BANK CHARGES", "AMAZONFEE", "B", "CRUK", "S", "PADS"]
    customers = lines.dropna(subset=["customer_id"]).groupby("customer_id")["country"].first()
    clusters = (customers != "Germany").astype(int).rename("cluster").reset_index()
    settings = BasketSettings(min_support=0.03, min_confidence=0.3, min_lift=1.0, max_len=3,
                              max_basket_size=50, min_baskets=20)
    rules = mine_rules(lines, clusters, settings=settings, non_product_codes=codes)

    german = set(clusters.loc[clusters["cluster"] == 0, "customer_id"])
    purchases = lines.loc[~lines["is_return"] & lines["stock_code"].notna()
                          & ~lines["stock_code"].isin(codes) & lines["customer_id"].isin(german)]
    baskets = [sorted(set(group)) for _, group in purchases.groupby("invoice")["stock_code"]]
    baskets = [basket for basket in baskets if len(basket) <= settings.max_basket_size]
    reference = reference_rules(baskets, settings)
    assert_same_rules(rules.loc[rules["cluster"] == 0].drop(columns="cluster"), reference)


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from("ABCDEFG"), max_size=5, unique=True), min_size=1,
                max_size=40),
       st.sampled_from([0.05, 0.1, 0.25]), st.sampled_from([2, 3]))
def test_frequent_itemsets_equal_mlxtend_fpgrowth(baskets: list[list[str]], min_support: float,
                                                  max_len: int) -> None:
    """Distinct baskets inserted once with their count give fpgrowth's item sets and supports
    (repeated baskets, empty baskets and single items included)."""
    products = np.array(sorted("ABCDEFG"), dtype=object)
    basket = np.array([i for i, items in enumerate(baskets) for _ in items], dtype=np.int64)
    product = np.array([ord(item) - ord("A") for items in baskets for item in items],
                       dtype=np.int64)
    matrix, columns = basket_matrix(basket, product, products, min_support)
    matrix.resize((len(baskets), matrix.shape[1]))  # trailing empty baskets are baskets too
    settings = BasketSettings(min_support=min_support, max_len=max_len)
    ours = frequent_itemsets(matrix, columns, settings)
    dense = pd.DataFrame(matrix.toarray().astype(bool), columns=list(columns))
    expected = fpgrowth(dense, min_support=min_support, use_colnames=True, max_len=max_len)
    assert dict(zip(ours["itemsets"], ours["support"], strict=True)) == \
        dict(zip(expected["itemsets"], expected["support"], strict=True))


def test_distinct_rows_counts_each_set_of_columns_once() -> None:
    from scipy import sparse

    rows = [[0, 2], [], [0, 2], [1], [0, 2], [], [70], [1, 70]]
    matrix = sparse.csr_matrix(
        (np.ones(sum(map(len, rows))), ([i for i, r in enumerate(rows) for _ in r],
                                        [c for r in rows for c in r])), shape=(len(rows), 71))
    first, counts = distinct_rows(matrix)
    assert first.tolist() == [0, 1, 3, 6, 7]
    assert counts.tolist() == [3, 2, 1, 1, 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fp_growth_equals_mlxtend_fpgrowth_on_seeded_random_baskets(seed: int) -> None:
    """Deeper trees than the hypothesis test: 400 baskets of up to 12 of 40 products with
    skewed popularity, item sets up to 4, against mlxtend's public fpgrowth."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 41)
    baskets = [rng.choice(40, size=rng.integers(0, 13), replace=False, p=weights / weights.sum())
               for _ in range(400)]
    products = np.array([f"P{i:02d}" for i in range(40)], dtype=object)
    basket = np.array([i for i, items in enumerate(baskets) for _ in items], dtype=np.int64)
    product = np.concatenate([*baskets, np.zeros(0)]).astype(np.int64)
    settings = BasketSettings(min_support=0.03, max_len=4)
    matrix, columns = basket_matrix(basket, product, products, settings.min_support)
    matrix.resize((len(baskets), matrix.shape[1]))
    ours = frequent_itemsets(matrix, columns, settings)
    dense = pd.DataFrame(matrix.toarray().astype(bool), columns=list(columns))
    expected = fpgrowth(dense, min_support=settings.min_support, use_colnames=True,
                        max_len=settings.max_len)
    assert len(expected) > 100 and expected["itemsets"].map(len).max() == 4
    assert dict(zip(ours["itemsets"], ours["support"], strict=True)) == \
        dict(zip(expected["itemsets"], expected["support"], strict=True))
