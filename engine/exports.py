"""CSV exports for Tableau / Power BI: exactly the columns, in the order, the spec lists."""

from __future__ import annotations

from typing import IO

import pandas as pd

from engine.classes import TRANSITION_COLUMNS
from engine.kpis import KPI_COLUMNS
from engine.outcomes import OFFER_EXPORT_COLUMNS
from engine.profiles import PROFILE_COLUMNS

SEGMENT_COLUMNS = ["customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score",
                   "m_score", "rfm_code", "rfm_score", "rfm_segment", "cluster", "value_tier",
                   "customer_class"]
RULE_COLUMNS = ["cluster", "antecedents", "consequents", "support", "confidence", "lift",
                "leverage", "conviction", "zhangs_metric"]
RECOMMENDATION_COLUMNS = ["customer_id", "rank", "stock_code", "description", "score", "reason"]
ALL_CUSTOMERS = "all"
ITEM_SEPARATOR = ";"

COLUMNS = {
    "kpis": KPI_COLUMNS,
    "offers": OFFER_EXPORT_COLUMNS,
    "segments": SEGMENT_COLUMNS,
    "rules": RULE_COLUMNS,
    "recommendations": RECOMMENDATION_COLUMNS,
    "profiles": PROFILE_COLUMNS,
    "transitions": TRANSITION_COLUMNS,
}


def _items(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, tuple | list | frozenset | set):
        return ITEM_SEPARATOR.join(sorted(str(item) for item in value))
    return str(value)


def export_frame(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame reduced and ordered to the export's columns (rules: item sets ';'-joined and
    cluster 'all' for the rules over all customers)."""
    columns = COLUMNS[kind]
    out = frame.reindex(columns=columns).copy()
    if kind == "rules":
        out["cluster"] = [ALL_CUSTOMERS if value is None or pd.isna(value) else int(value)
                          for value in out["cluster"]]
        out["antecedents"] = out["antecedents"].map(_items)
        out["consequents"] = out["consequents"].map(_items)
    return out


def write_csv(kind: str, frame: pd.DataFrame, target: str | IO[str]) -> int:
    """Writes the export to a path or an open text stream; returns the number of rows."""
    out = export_frame(kind, frame)
    out.to_csv(target, index=False, lineterminator="\n")
    return len(out)
