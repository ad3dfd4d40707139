"""CSV exports for Tableau / Power BI: exactly the columns, in the order, the spec lists
(engine.columns holds them)."""

from __future__ import annotations

import re
from typing import IO

import pandas as pd

from engine.columns import (
    CLV_COLUMNS,
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
    "clv": CLV_COLUMNS,
}


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_cell(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula, with a leading apostrophe (shown,
    not run); anything else unchanged: numbers, and text that is a plain number ('-17')."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) \
            and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell passed through neutralise_cell; numeric, boolean and
    date columns are never touched."""
    text_columns = [name for name in frame.columns
                    if frame[name].dtype == object or pd.api.types.is_string_dtype(frame[name])]
    if not text_columns:
        return frame
    out = frame.copy()
    for name in text_columns:
        out[name] = out[name].map(neutralise_cell)
    return out


def export_frame(kind: str, frame: pd.DataFrame, *, neutralise: bool = True) -> pd.DataFrame:
    """The frame reduced and ordered to the export's columns (rules: item sets ';'-joined and
    cluster 'all' for the rules over all customers); neutralise: formula-like text cells get a
    leading apostrophe ([export] neutralise_formulas)."""
    columns = COLUMNS[kind]
    out = frame.reindex(columns=columns).copy()
    if kind == "rules":
        out["cluster"] = [ALL_CUSTOMERS if value is None or pd.isna(value) else int(value)
                          for value in out["cluster"]]
        out["antecedents"] = out["antecedents"].map(format_items)
        out["consequents"] = out["consequents"].map(format_items)
    return neutralise_formulas(out) if neutralise else out


def write_csv(kind: str, frame: pd.DataFrame, target: str | IO[str], *,
              neutralise: bool = True) -> int:
    """Writes the export to a path or an open text stream; returns the number of rows."""
    out = export_frame(kind, frame, neutralise=neutralise)
    out.to_csv(target, index=False, lineterminator="\n")
    return len(out)
