"""Cluster profiles and personas: levels from the centroid against all customers, rules as data,
stable across reruns, never a recent cluster's advice for a lapsed one."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engine.profiles import PROFILE_COLUMNS, cluster_profiles, level, persona_of
from engine.settings import (
    DEFAULT_STRATEGIES,
    LEVELS,
    STAGES,
    PersonaRule,
    PersonaSettings,
    SettingsError,
    load_settings,
)

PERSONAS = PersonaSettings()
STAGE = {rule.name: STAGES.index(rule.stage) for rule in PERSONAS.rules}


def members(cluster: int, n: int, recency: float, frequency: float, monetary: float,
            tier: str) -> list[dict[str, object]]:
    return [{"cluster": cluster, "value_tier": tier, "recency_days": recency,
             "frequency": frequency, "monetary": monetary} for _ in range(n)]


# Three clusters like the issue's: recent big regulars, recent newcomers, and a lapsed cluster
# of former big spenders that a value ranking alone would still call "High value".
SEGMENTS = pd.DataFrame(
    members(0, 30, 5, 20, 5000, "High value")
    + members(1, 40, 12, 2, 300, "Mid value")
    + members(2, 30, 300, 12, 4000, "High value")
    + members(3, 100, 90, 4, 1000, "Mid value")  # everyone else
)


def test_personas_follow_recency_frequency_and_spend() -> None:
    profiles = cluster_profiles(SEGMENTS, DEFAULT_STRATEGIES, PERSONAS)
    assert list(profiles.columns) == PROFILE_COLUMNS
    assert PROFILE_COLUMNS.index("persona") == PROFILE_COLUMNS.index("value_tier") + 1
    by_cluster = profiles.set_index("cluster")
    assert by_cluster.loc[0, "persona"] == "Champions"
    assert by_cluster.loc[1, "persona"] == "Promising newcomers"
    assert by_cluster.loc[2, "persona"] == "At-risk big spenders"
    assert by_cluster.loc[3, "persona"] == "Slipping regulars"
    assert by_cluster.loc[2, "r_level"] == "low" and by_cluster.loc[0, "r_level"] == "high"
    # the lapsed "High value" cluster is not advised like the recent one
    assert by_cluster.loc[2, "strategy"] == DEFAULT_STRATEGIES["At-risk big spenders"]
    assert by_cluster.loc[2, "strategy"] != by_cluster.loc[0, "strategy"]


def test_personas_do_not_depend_on_cluster_numbers() -> None:
    mapping = {0: 7, 1: 3, 2: 5, 3: 0}
    relabelled = SEGMENTS.assign(cluster=SEGMENTS["cluster"].map(mapping))
    first = cluster_profiles(SEGMENTS, DEFAULT_STRATEGIES, PERSONAS)
    again = cluster_profiles(relabelled.sample(frac=1.0, random_state=1), DEFAULT_STRATEGIES,
                             PERSONAS)
    for _, row in first.iterrows():
        other = again.loc[again["cluster"] == mapping[row["cluster"]]].iloc[0]
        assert other["persona"] == row["persona"]


def test_a_persona_without_text_gets_none_not_another_personas() -> None:
    only_champions = {"Champions": "VIP", "High value": "tier text"}
    profiles = cluster_profiles(SEGMENTS, only_champions, PERSONAS).set_index("cluster")
    assert profiles.loc[0, "strategy"] == "VIP"
    assert profiles.loc[2, "strategy"] == ""  # never the "High value" tier's text


def test_level_thresholds() -> None:
    assert level(0.5, PERSONAS) == "high" and level(0.49, PERSONAS) == "mid"
    assert level(-0.5, PERSONAS) == "low" and level(-0.49, PERSONAS) == "mid"


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.sampled_from(LEVELS), st.sampled_from(LEVELS), st.sampled_from(LEVELS),
       st.sampled_from(LEVELS))
def test_a_more_recent_level_never_gets_a_more_lapsed_persona(r1: str, r2: str, f: str,
                                                              m: str) -> None:
    recent, older = sorted([r1, r2], key=LEVELS.index)  # LEVELS: high (recent) first
    assert STAGE[persona_of(recent, f, m, PERSONAS)] <= STAGE[persona_of(older, f, m, PERSONAS)]


centroid = st.tuples(st.floats(0, 400), st.floats(1, 60), st.floats(0, 20000))


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(centroid, min_size=2, max_size=6), st.data())
def test_a_more_recent_centroid_never_gets_a_more_lapsed_persona(
        centroids: list[tuple[float, float, float]], data: st.DataObject) -> None:
    """Whole profiles: clusters of 10 identical customers each; make one cluster's recency
    smaller (more recent) than another's with the same F and M: its stage is never later."""
    recency, frequency, monetary = centroids[0]
    sooner = data.draw(st.floats(0, recency))
    rows = members(0, 10, recency, frequency, monetary, "Mid value")
    rows += members(1, 10, sooner, frequency, monetary, "Mid value")
    for index, (r, f, m) in enumerate(centroids[1:], start=2):
        rows += members(index, 10, r, f, m, "Mid value")
    profiles = cluster_profiles(pd.DataFrame(rows), {}, PERSONAS).set_index("cluster")
    assert STAGE[profiles.loc[1, "persona"]] <= STAGE[profiles.loc[0, "persona"]]


def test_rules_that_would_advise_a_lapsed_cluster_like_a_recent_one_are_refused() -> None:
    backwards = [PersonaRule(name="Champions", stage="recent", r=["low"]),
                 PersonaRule(name="Lapsed low value", stage="lapsed")]
    with pytest.raises(ValueError, match="more recent centroid would get a more lapsed"):
        PersonaSettings(rules=backwards)
    with pytest.raises(ValueError, match="no rule matches levels"):
        PersonaSettings(rules=[PersonaRule(name="Champions", stage="recent", r=["high"])])


def test_config_file_rules_are_read_and_checked(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[personas]\nhigh = 1.0\nlow = -1.0\nrules = [\n'
                    '  { name = "Anyone", stage = "recent" },\n]\n')
    assert load_settings(path, environ={}).personas.rules[0].name == "Anyone"
    path.write_text('[personas]\nrules = [\n  { name = "Old", stage = "lapsed", r = ["high"] },\n'
                    '  { name = "New", stage = "recent" },\n]\n')
    with pytest.raises(SettingsError, match="personas"):
        load_settings(path, environ={})


def test_shipped_config_matches_the_defaults() -> None:
    shipped = load_settings("config.toml", environ={})
    assert shipped.personas == PERSONAS
    assert shipped.strategies == DEFAULT_STRATEGIES
