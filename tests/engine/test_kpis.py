"""KPIs per segment, computed by hand on a tiny frame."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from engine.columns import KPI_COLUMNS
from engine.kpis import segment_kpis
from engine.rfm import EngineInputError
from tests.engine.factories import line, lines_frame

LINES = lines_frame([
    line("A", "0", "2024-12-01 10:00", 999.0),  # before the window: history only
    line("A", "1", "2025-01-10 10:00", 60.0),
    line("A", "1", "2025-01-10 10:00", 40.0, stock_code="P2"),
    line("A", "2", "2025-01-10 16:00", 20.0),  # a second invoice the same day: one visit
    line("A", "3", "2025-02-09 10:00", 30.0),
    line("A", "C4", "2025-02-15 10:00", -10.0),
    line("A", "5", "2025-05-01 10:00", 50.0),
    line("A", "11", "2025-07-01 10:00", 500.0),  # on as_of: the future, left out
    line("B", "6", "2025-03-01 10:00", 40.0),
    line("B", "7", "2025-03-11 10:00", 60.0),
    line("C", "8", "2025-06-01 10:00", 10.0),
    line("C", "8", "2025-06-01 10:00", 5.0, stock_code="POST"),
    line("D", "9", "2024-11-01 10:00", 30.0),
])
SEGMENTS = pd.DataFrame({
    "customer_id": ["A", "B", "C", "D"],
    "customer_class": ["High value", "High value", "Ordinary", "Ordinary"],
    "rfm_segment": ["VIP", "Loyal", "Loyal", "VIP"],
    "value_tier": ["High value", "High value", "Mid value", "Mid value"],
})


def _kpis(segments: pd.DataFrame = SEGMENTS) -> pd.DataFrame:
    return segment_kpis(LINES, segments, as_of=date(2025, 7, 1), since=date(2025, 1, 1),
                        non_product_codes=["POST"])


def test_kpis_by_hand() -> None:
    out = _kpis()
    assert list(out.columns) == KPI_COLUMNS
    rows = {(row.scheme, row.segment): row for row in out.itertuples(index=False)}
    assert list(rows) == [("class", "High value"), ("class", "Ordinary"), ("rfm_segment", "Loyal"),
                          ("rfm_segment", "VIP"), ("persona", "High value"),
                          ("persona", "Mid value")]
    # Net in the window: A 190, B 100, C 10, D 0 (total 300). Purchase value / invoices:
    # A 200 / 4, B 100 / 2, C 10 / 1. Retention: bought before 2025-04-02 (as_of - 90 days):
    # A, B, D; bought since: A, C. Visit gaps: A 30 and 81 days, B 10 days.
    expected = {
        ("class", "High value"): (2, 0.9667, 50.0, 1.0, 0.5, 30.0),
        ("class", "Ordinary"): (2, 0.0333, 10.0, 0.0, 0.0, np.nan),
        ("rfm_segment", "Loyal"): (2, 0.3667, 36.67, 0.5, 0.0, 10.0),
        ("rfm_segment", "VIP"): (2, 0.6333, 50.0, 0.5, 0.5, 55.5),
        ("persona", "High value"): (2, 0.9667, 50.0, 1.0, 0.5, 30.0),
        ("persona", "Mid value"): (2, 0.0333, 10.0, 0.0, 0.0, np.nan),
    }
    for key, (customers, share, aov, repeat, retention, gap) in expected.items():
        row = rows[key]
        assert row.customers == customers, key
        assert row.revenue_share == pytest.approx(share, abs=1e-4), key
        assert row.aov == pytest.approx(aov, abs=0.01), key
        assert row.repeat_rate == pytest.approx(repeat), key
        assert row.retention_90d == pytest.approx(retention), key
        assert row.median_days_between_orders == pytest.approx(gap, nan_ok=True), key


def test_a_persona_column_is_used_when_the_segments_have_one() -> None:
    with_personas = SEGMENTS.assign(persona=["Champions", "Champions", "Champions", "Lapsed"])
    out = _kpis(with_personas)
    personas = out[out["scheme"] == "persona"].set_index("segment")
    assert personas["customers"].to_dict() == {"Champions": 3, "Lapsed": 1}
    assert personas.loc["Lapsed", "retention_90d"] == 0.0


def test_a_missing_segment_column_is_named() -> None:
    with pytest.raises(EngineInputError, match="rfm_segment"):
        _kpis(SEGMENTS.drop(columns=["rfm_segment"]))
