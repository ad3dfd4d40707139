"""The EASE part of the recommendations (engine/recommend_ease.py): weights checked by hand,
the products kept, scores, reasons, the recency weighting, and the part inside `recommend`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from engine.baskets import empty_rules
from engine.recommend import recommend
from engine.recommend_ease import ItemWeights, latest_weights
from engine.settings import RecommendSettings, SettingsError, load_settings
from tests.engine.test_recommend import dated_lines

ONLY_EASE = dict(rule_weight=0.0, cooccurrence_weight=0.0, popularity_weight=0.0,
                 neighbour_weight=0.0, trending_weight=0.0, trending_boost=0.0, ease_weight=1.0)


def test_two_product_weights_by_hand() -> None:
    """X = [[1, 1], [1, 0], [1, 1]], lambda 1: G = X'X + I = [[4, 2], [2, 3]]. For two products
    B_01 = -P_01 / P_11 = G_01 / G_00 = 2 / 4 and B_10 = G_10 / G_11 = 2 / 3; diagonal 0."""
    bought = sparse.csr_matrix(np.array([[1, 1], [1, 0], [1, 1]], dtype=float))
    model = ItemWeights.of(bought, n_items=2, regularisation=1.0)
    assert list(model.items) == [0, 1]
    assert model.weights == pytest.approx(np.array([[0.0, 0.5], [2 / 3, 0.0]]))


def test_three_products_solve_the_ease_problem() -> None:
    """B minimises |X - XB|^2 + lambda |B|^2 with a zero diagonal: each column j of B, off the
    diagonal, solves (X_-j' X_-j + lambda I) b = X_-j' x_j (the others predicting j)."""
    rng = np.random.default_rng(3)
    bought = sparse.csr_matrix((rng.random((30, 3)) < 0.5).astype(float))
    model = ItemWeights.of(bought, n_items=3, regularisation=2.0)
    x = bought.toarray()
    for j in range(3):
        others = [i for i in range(3) if i != j]
        rest = x[:, others]
        expected = np.linalg.solve(rest.T @ rest + 2.0 * np.eye(2), rest.T @ x[:, j])
        assert model.weights[others, j] == pytest.approx(expected, rel=1e-5)
        assert model.weights[j, j] == 0.0


def test_keeps_the_most_bought_products_lower_index_on_ties_never_unbought_ones() -> None:
    # buyers per product: 2, 3, 2, 0, 1
    bought = sparse.csr_matrix(np.array([
        [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 1],
    ], dtype=float))
    assert list(ItemWeights.of(bought, n_items=3, regularisation=1.0).items) == [0, 1, 2]
    assert list(ItemWeights.of(bought, n_items=2, regularisation=1.0).items) == [0, 1]
    everything = ItemWeights.of(bought, n_items=10, regularisation=1.0)
    assert list(everything.items) == [0, 1, 2, 4]
    assert list(everything.position) == [0, 1, 2, -1, 3]
    assert len(ItemWeights.of(bought, n_items=1, regularisation=1.0).items) == 0  # nothing to learn


def test_scores_clip_negatives_and_divide_by_the_row_peak() -> None:
    model = ItemWeights(items=np.array([0, 1, 2]), position=np.array([0, 1, 2]),
                        weights=np.array([[0.0, 0.4, -0.5], [0.2, 0.0, 0.8], [0.1, 0.3, 0.0]],
                                         dtype=np.float32))
    mine = sparse.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=np.float32))
    # row 0: [0, 0.4, -0.5] -> [0, 1, 0]; row 1: [0.2, 0.4, 0.3] -> / 0.4; row 2: nothing
    assert model.scores(mine) == pytest.approx(np.array([
        [0.0, 1.0, 0.0], [0.5, 1.0, 0.75], [0.0, 0.0, 0.0]]))


def test_the_reason_is_the_bought_product_with_the_largest_weight() -> None:
    """Kept products 10, 20, 30, 40 (positions 0-3). Customer 0 owns 10 and 20: towards 30 the
    weights are 0.2 and 0.6 -> 20; towards 40, 0.5 and 0.5 -> 10 (the lower). Customer 1 owns
    only 30, whose weight towards 40 is negative: no reason (-1)."""
    weights = np.zeros((4, 4), dtype=np.float32)
    weights[0, 2], weights[1, 2] = 0.2, 0.6
    weights[0, 3], weights[1, 3] = 0.5, 0.5
    weights[2, 3] = -0.1
    position = np.full(50, -1)
    position[[10, 20, 30, 40]] = [0, 1, 2, 3]
    model = ItemWeights(items=np.array([10, 20, 30, 40]), position=position, weights=weights)
    mine = sparse.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32))
    found = model.triggers(mine, np.array([0, 0, 1]), np.array([30, 40, 40]))
    assert list(found) == [20, 10, -1]


def test_latest_weights_halve_every_half_life_and_keep_the_latest_purchase() -> None:
    end = np.datetime64("2011-06-01T00:00", "ns")
    ts = np.array(["2011-05-22", "2011-05-12", "2011-06-01", "2011-05-22"],
                  dtype="datetime64[ns]")
    rows, products = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0])
    used = np.array([True, True, True, False])  # the last line is a return, say
    found = latest_weights(ts, used, rows, products, end, 10.0, (2, 2)).toarray()
    # (0, 0): bought 10 and 20 days before: the latest, 0.5; (1, 1) today: 1; (1, 0) unused: 0
    assert found == pytest.approx(np.array([[0.5, 0.0], [0.0, 1.0]]))



# Three customers bought A with OLD long ago, two bought A with NEW last week; t bought only A.
GOES_WITH_A = dated_lines([
    ("c1", "1", "2010-01-05 10:00", ["A", "OLD"]), ("c2", "2", "2010-01-06 10:00", ["A", "OLD"]),
    ("c3", "3", "2010-01-07 10:00", ["A", "OLD"]), ("c4", "4", "2011-05-25 10:00", ["A", "NEW"]),
    ("c5", "5", "2011-05-26 10:00", ["A", "NEW"]), ("t", "6", "2011-05-30 10:00", ["A"]),
])
PEOPLE = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4", "c5", "t"], "cluster": [0] * 6})


@pytest.mark.parametrize(("half_life", "first"), [(0.0, "OLD"), (30.0, "NEW")])
def test_recent_baskets_teach_more_with_a_half_life(half_life: float, first: str) -> None:
    """Every purchase alike, OLD went with A more often (3 against 2); with a 30-day half-life
    the baskets of last week count, those of last year hardly. Either way the reason names A."""
    settings = RecommendSettings(top_n=1, ease_lambda=1.0, ease_half_life_days=half_life,
                                 **ONLY_EASE)
    recs = recommend(GOES_WITH_A, PEOPLE, empty_rules(), settings=settings,
                     non_product_codes=[], as_of=date(2011, 6, 1))
    for_t = recs.loc[recs["customer_id"] == "t"]
    assert list(for_t["stock_code"]) == [first]
    assert list(for_t["reason"]) == ["often bought with desc A"]
    assert list(for_t["score"]) == pytest.approx([1.0])  # the row's peak, times weight 1


def test_ease_off_scores_nothing() -> None:
    settings = RecommendSettings(top_n=1, **{**ONLY_EASE, "ease_weight": 0.0})
    recs = recommend(GOES_WITH_A, PEOPLE, empty_rules(), settings=settings,
                     non_product_codes=[], as_of=date(2011, 6, 1))
    assert recs.empty


def test_config_toml_ships_the_schema_defaults_and_bad_ease_settings_are_refused(
        tmp_path: Path) -> None:
    shipped = load_settings(Path(__file__).parents[2] / "config.toml").recommend
    assert shipped == RecommendSettings()
    for bad in ("ease_items = 1", "ease_items = 6000", "ease_lambda = 0",
                "ease_half_life_days = -1", "ease_weight = -0.5"):
        config = tmp_path / "config.toml"
        config.write_text(f"[recommend]\n{bad}\n", encoding="utf-8")
        with pytest.raises(SettingsError, match=bad.split(" ")[0]):
            load_settings(config)
