"""CSV exports for Tableau / Power BI: exactly the columns, in the order, the spec lists
(engine.columns holds them)."""

from __future__ import annotations

from typing import IO

import pandas as pd

from engine.columns import (
    KPI_COLUMNS,
    OFFER_EXPORT_COLUMNS,
    PROFILE_COLUMNS,
    RECOMMENDATION_COLUMNS,
    RULE_COLUMNS,
    SEGMENT_COLUMNS,
    TRANSITION_COLUMNS,
    format_items,
)

ALL_CUSTOMERS = "all"

COLUMNS = {
    "kpis": KPI_COLUMNS,
    "offers": OFFER_EXPORT_COLUMNS,
    "segments": SEGMENT_COLUMNS,
    "rules": RULE_COLUMNS,
    "recommendations": RECOMMENDATION_COLUMNS,
    "profiles": PROFILE_COLUMNS,
    "transitions": TRANSITION_COLUMNS,
}


def export_frame(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame reduced and ordered to the export's columns (rules: item sets ';'-joined and
    cluster 'all' for the rules over all customers)."""
    columns = COLUMNS[kind]
    out = frame.reindex(columns=columns).copy()
    if kind == "rules":
        out["cluster"] = [ALL_CUSTOMERS if value is None or pd.isna(value) else int(value)
                          for value in out["cluster"]]
        out["antecedents"] = out["antecedents"].map(format_items)
        out["consequents"] = out["consequents"].map(format_items)
    return out


def write_csv(kind: str, frame: pd.DataFrame, target: str | IO[str]) -> int:
    """Writes the export to a path or an open text stream; returns the number of rows."""
    out = export_frame(kind, frame)
    out.to_csv(target, index=False, lineterminator="\n")
    return len(out)
