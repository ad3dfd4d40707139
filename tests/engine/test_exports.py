"""Export columns exactly as the spec lists them, item sets ';'-joined, 'all' for all customers."""

from __future__ import annotations

import io

import pandas as pd

from engine.exports import COLUMNS, export_frame, write_csv
from engine.pipeline import segment
from engine.settings import Settings
from tests.engine.factories import AS_OF, population

SPEC = {
    "segments": "customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, "
                "rfm_code, rfm_score, rfm_segment, cluster, value_tier, customer_class",
    "rules": "cluster, antecedents, consequents, support, confidence, lift, leverage, "
             "conviction, zhangs_metric",
    "recommendations": "customer_id, rank, stock_code, description, score, reason",
    "clv": "customer_id, frequency, recency, T, p_alive, expected_purchases_90d, "
           "expected_purchases_365d, expected_order_value, clv_365d, churn_risk",
}


def test_columns_are_the_spec_columns_in_order() -> None:
    for kind, spec in SPEC.items():
        assert COLUMNS[kind] == spec.split(", ")


def test_segments_csv_from_a_run_result() -> None:
    result = segment(population(), None, Settings(), as_of=AS_OF, k=3)
    buffer = io.StringIO()
    rows = write_csv("segments", result.segments, buffer)
    frame = pd.read_csv(io.StringIO(buffer.getvalue()), dtype={"customer_id": str,
                                                                "rfm_code": str})
    assert frame.columns.tolist() == SPEC["segments"].split(", ")
    assert rows == len(frame) == len(result.segments)
    assert "rfm_grid_segment" not in frame.columns


def test_rules_join_item_sets_and_name_the_all_customer_rules() -> None:
    rules = pd.DataFrame({"cluster": [None, 2], "antecedents": [("A", "B"), ("C",)],
                          "consequents": [("D",), ("E", "F")], "support": [0.1, 0.2],
                          "confidence": [0.5, 1.0], "lift": [2.0, 3.0], "leverage": [0.01, 0.02],
                          "conviction": [1.5, None], "zhangs_metric": [0.3, 0.4]})
    out = export_frame("rules", rules)
    assert out["cluster"].tolist() == ["all", 2]
    assert out["antecedents"].tolist() == ["A;B", "C"]
    assert out["consequents"].tolist() == ["D", "E;F"]
    buffer = io.StringIO()
    write_csv("rules", rules, buffer)
    assert buffer.getvalue().splitlines()[0] == SPEC["rules"].replace(", ", ",")
    assert buffer.getvalue().splitlines()[2].startswith("2,C,E;F,")
