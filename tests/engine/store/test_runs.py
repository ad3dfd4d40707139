"""Runs, the published run, a run's results and the transitions between two runs."""

from __future__ import annotations

from datetime import date
from typing import Any

from dashboard import frames
from engine.columns import SEGMENT_COLUMNS
from engine.store import results, runs, sales


def test_runs_segments_and_transitions(filled: Any) -> None:
    published = runs.published_run(engine=filled)
    assert published is not None and published["id"] == 2
    assert list(runs.list_runs(engine=filled, status=runs.SUCCEEDED)["id"]) == [2, 1]
    # The Segments page's summary of a run's rows.
    sizes = frames.summarise(results.customer_results(engine=filled, run_id=2), "customer_class")
    assert dict(zip(sizes["customer_class"], sizes["customers"], strict=True)) == {
        "High value": 1, "Negative": 1, "New": 1}
    rows = results.customer_results(engine=filled, run_id=2, classes=["New", "Negative"])
    assert list(rows.columns) == SEGMENT_COLUMNS
    assert list(rows["customer_id"]) == ["bob", "carol"]
    assert list(results.customer_results(engine=filled, run_id=2,
                                         segments=["VIP"])["customer_id"]) == ["alice"]
    flows = results.transitions(engine=filled, from_run=1, to_run=2)
    # One labelling for the export and the dashboard: engine.classes.ABSENT ("(none)").
    assert {(r.from_class, r.to_class, r.customers) for r in flows.itertuples()} == {
        ("High value", "High value", 1), ("Ordinary", "Negative", 1), ("(none)", "New", 1)}
    assert list(results.cluster_profiles(engine=filled, run_id=2)["cluster"]) == [0, 1]
    rules = results.rules_by_lift(engine=filled, run_id=2)
    assert list(rules["lift"]) == [2.0, 1.2]
    assert rules["cluster"].isna().tolist() == [False, True]
    assert sales.data_span(engine=filled) == (date(2011, 1, 5), date(2011, 2, 10))

