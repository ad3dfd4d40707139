"""Features, automatic k, stored scores, value tiers and their stability under a new seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, silhouette_score

from engine.clustering import (
    CRITERIA,
    DIAGNOSTIC_SEED,
    ClusteringError,
    cluster_customers,
    combine_nominations,
    diagnostic_sample,
    feature_frame,
    scale_features,
    silhouettes,
    value_tiers,
)
from engine.pipeline import segment
from engine.rfm import rfm_table
from engine.settings import ClusteringSettings, Settings
from tests.engine.factories import AS_OF, population

TIERS = ["High value", "Mid value", "Low value"]


def test_one_pass_silhouettes_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    matrix = np.vstack([rng.normal(loc, 1.0, size=(200, 3)) for loc in (0, 4, 9)])
    labelings = [KMeans(k, n_init=2, random_state=0).fit(matrix).labels_ for k in (2, 3, 6)]
    ours = silhouettes(matrix, labelings, chunk=97)
    assert ours == pytest.approx([silhouette_score(matrix, labels) for labels in labelings],
                                 abs=1e-9)


def test_singleton_clusters_score_zero_like_sklearn() -> None:
    matrix = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
    labels = np.array([0, 0, 1])
    assert silhouettes(matrix, [labels]) == pytest.approx([silhouette_score(matrix, labels)])


def test_auto_k_stores_every_score_for_every_k() -> None:
    rfm = rfm_table(population(), as_of=AS_OF)
    result = cluster_customers(rfm, ClusteringSettings(k_min=2, k_max=7))
    scores = pd.DataFrame(result.diagnostics["scores"])
    assert scores["k"].tolist() == [2, 3, 4, 5, 6, 7]
    for column in ("inertia", "silhouette", "gap", "gap_sd", "calinski_harabasz",
                   "davies_bouldin"):
        assert scores[column].notna().all(), column
    assert set(result.diagnostics["nominations"]) == set(CRITERIA)
    assert result.diagnostics["k_mode"] == "auto"
    assert result.k == result.diagnostics["chosen_k"]
    assert sorted(np.unique(result.labels)) == list(range(result.k))


def test_forced_k_is_used_and_still_scored() -> None:
    rfm = rfm_table(population(), as_of=AS_OF)
    result = cluster_customers(rfm, ClusteringSettings(k_min=3, k_max=4), k=6)
    assert result.k == 6 and result.diagnostics["k_mode"] == "fixed"
    assert pd.DataFrame(result.diagnostics["scores"])["k"].tolist() == [3, 4, 6]


def test_too_few_customers_is_an_expected_error() -> None:
    rfm = rfm_table(population(), as_of=AS_OF).head(3)
    with pytest.raises(ClusteringError, match="k = 5 needs more than 5 customers"):
        cluster_customers(rfm, ClusteringSettings(), k=5)


def test_above_the_sample_size_k_is_scored_on_a_fixed_sample_and_fitted_on_everyone() -> None:
    rfm = rfm_table(population(), as_of=AS_OF)
    settings = ClusteringSettings(k_min=2, k_max=5, silhouette_sample=100, n_init=4)
    assert len(rfm) > 150
    first = cluster_customers(rfm, settings, seed=1)
    second = cluster_customers(rfm, settings, seed=2)
    assert first.diagnostics["silhouette_sampled"] and first.diagnostics["scored_customers"] == 100
    assert first.diagnostics["scores"] == second.diagnostics["scores"]  # not moved by the seed
    assert len(first.labels) == len(rfm) and first.k == first.diagnostics["chosen_k"]
    # Every stored score is the one scikit-learn gives for k-means fitted on the sample.
    sample = diagnostic_sample(scale_features(feature_frame(rfm, settings.features)), 100)
    assert len(sample) == 100
    scores = pd.DataFrame(first.diagnostics["scores"])
    for row in scores.itertuples():
        model = KMeans(row.k, n_init=4, random_state=DIAGNOSTIC_SEED).fit(sample)
        assert row.inertia == pytest.approx(model.inertia_)
        assert row.silhouette == pytest.approx(silhouette_score(sample, model.labels_), abs=1e-9)
        assert row.calinski_harabasz == pytest.approx(
            calinski_harabasz_score(sample, model.labels_))


def test_combination_rule_majority_then_mean_rank_then_smaller_k() -> None:
    scores = pd.DataFrame({"k": [3, 4, 5], "silhouette": [0.5, 0.4, 0.3],
                           "calinski_harabasz": [10.0, 30.0, 20.0],
                           "davies_bouldin": [0.9, 0.8, 1.0]})
    assert combine_nominations(scores, {"elbow": 5, "silhouette": 5, "gap": 3}) == 5
    # 3 and 4 tie on votes; 4 has the better mean rank (1.67 vs 2.0).
    assert combine_nominations(scores, {"elbow": 3, "gap": 4, "silhouette": None}) == 4


def test_value_tiers_follow_spend_not_cluster_count() -> None:
    # Four clusters: one big spender group, a mid group, a low group and a tiny odd one.
    centroids = np.array([[0.0, -1.0, -1.0], [0.0, 2.0, 2.0], [0.0, 0.2, 0.3], [0.0, -3.0, -3.0]])
    order, tiers, _ = value_tiers(centroids, ["recency", "frequency", "monetary"],
                                  {0: 400, 1: 100, 2: 300, 3: 5}, TIERS)
    assert order == [1, 2, 0, 3]
    assert tiers == {1: "High value", 2: "Mid value", 0: "Low value", 3: "Low value"}
    two = value_tiers(centroids[:2], ["recency", "frequency", "monetary"], {0: 1, 1: 1}, TIERS)
    assert two[1] == {1: "High value", 0: "Low value"}


def test_clusters_are_numbered_by_value() -> None:
    rfm = rfm_table(population(), as_of=AS_OF)
    result = cluster_customers(rfm, ClusteringSettings(), k=3)
    monetary = rfm.groupby(result.labels)["monetary"].median()
    assert monetary.is_monotonic_decreasing
    assert [result.tiers[c] for c in range(3)] == TIERS


@pytest.mark.parametrize("k", ["auto", 3, 5])
def test_tiers_and_classes_do_not_depend_on_the_seed(k) -> None:
    lines = population(seed=5)
    first = segment(lines, None, Settings(), as_of=AS_OF, k=k, seed=1).segments
    second = segment(lines, None, Settings(), as_of=AS_OF, k=k, seed=987654).segments
    columns = ["customer_id", "cluster", "value_tier", "customer_class"]
    pd.testing.assert_frame_equal(first[columns], second[columns])


def test_tiers_and_classes_do_not_depend_on_the_seed_when_k_is_chosen_on_a_sample() -> None:
    lines = population(seed=5)
    settings = Settings(clustering=ClusteringSettings(silhouette_sample=100))
    first = segment(lines, None, settings, as_of=AS_OF, seed=1)
    second = segment(lines, None, settings, as_of=AS_OF, seed=987654)
    assert first.diagnostics["silhouette_sampled"]
    columns = ["customer_id", "cluster", "value_tier", "customer_class"]
    pd.testing.assert_frame_equal(first.segments[columns], second.segments[columns])
