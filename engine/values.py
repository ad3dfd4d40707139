"""Plain Python values out of numpy and pandas ones: for the database driver and for JSON."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def plain(value: Any) -> Any:
    """A scalar the DB-API and json accept: numpy scalars to Python, NaN/inf/NA/NaT to None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_safe(value: Any) -> Any:
    """Nested dicts and lists whose leaves json.dumps accepts: keys as text, numpy scalars as
    Python, NaN/inf/NA as None, anything else as its text."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    value = plain(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
