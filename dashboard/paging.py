"""Server-side rows for an AG Grid in the infinite row model: filter, sort, slice a frame.

The grid sends `getRowsRequest` ({startRow, endRow, sortModel, filterModel}) whenever it needs a
block of rows (a page, another sort, a typed filter); `grid_block` answers with just that block
and the number of rows that pass the filters, so the browser never holds the whole table and
sorting and filtering cover every row, not only the ones sent. Pure: no Dash, no database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

# Most rows one request may ask for (the grid asks for cacheBlockSize rows at a time).
MAX_BLOCK = 500
SORT_DIRECTIONS = (None, "asc", "desc")


class GridRequestError(ValueError):
    """A getRowsRequest the grid would never send (the server answers 400 with this text)."""


def check_grid_request(request: Any) -> dict[str, Any]:
    """The request as a dict, its shape checked: row numbers are whole numbers, sortModel a list
    of {colId, sort}, filterModel column -> filter, number filters numbers. Anything else raises
    GridRequestError (it came from a hand-made POST, not from AG Grid)."""
    if request is None:
        return {}
    if not isinstance(request, Mapping):
        raise GridRequestError("getRowsRequest must be an object")
    for name in ("startRow", "endRow"):
        value = request.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise GridRequestError(f"getRowsRequest.{name} must be a whole number, not {value!r}")
    sort_model = request.get("sortModel") or []
    if not isinstance(sort_model, list) or not all(
            isinstance(item, Mapping) and isinstance(item.get("colId"), str)
            and item.get("sort") in SORT_DIRECTIONS for item in sort_model):
        raise GridRequestError("getRowsRequest.sortModel must be a list of {colId, sort}")
    filter_model = request.get("filterModel") or {}
    if not isinstance(filter_model, Mapping):
        raise GridRequestError("getRowsRequest.filterModel must be an object")
    for column, model in filter_model.items():
        _check_filter(str(column), model)
    return dict(request)


def _check_filter(column: str, model: Any) -> None:
    if not isinstance(model, Mapping):
        raise GridRequestError(f"the filter of column {column!r} must be an object")
    conditions = model.get("conditions")
    if conditions is not None:
        if not isinstance(conditions, list):
            raise GridRequestError(f"the conditions of column {column!r} must be a list")
        for part in conditions:
            _check_filter(column, {"filterType": model.get("filterType"), **part}
                          if isinstance(part, Mapping) else part)
        return
    if not isinstance(model.get("type") or "", str):
        raise GridRequestError(f"the filter type of column {column!r} must be text")
    if model.get("filterType") == "number":
        for name in ("filter", "filterTo"):
            value = model.get(name)
            if value is None:
                continue
            try:
                float(value)
            except (TypeError, ValueError):
                raise GridRequestError(f"the {name} of number column {column!r} must be a "
                                       f"number, not {value!r}") from None


def _text_condition(values: pd.Series, kind: str, wanted: Any) -> pd.Series:
    strings = values.astype("string")
    if kind in ("blank", "notBlank"):
        blank = (strings.str.strip() == "").fillna(True)  # missing counts as blank
        return blank if kind == "blank" else ~blank
    text = strings.str.lower()
    needle = str(wanted if wanted is not None else "").lower()
    if kind == "equals":
        found = text == needle
    elif kind == "notEqual":
        found = text != needle
    elif kind == "startsWith":
        found = text.str.startswith(needle)
    elif kind == "endsWith":
        found = text.str.endswith(needle)
    elif kind == "notContains":
        found = ~text.str.contains(needle, regex=False)
    else:  # "contains", AG Grid's default
        found = text.str.contains(needle, regex=False)
    return found.fillna(kind in ("notEqual", "notContains")).astype(bool)


def _number_condition(values: pd.Series, kind: str, wanted: Any, upper: Any) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    if kind == "blank":
        return numbers.isna()
    if kind == "notBlank":
        return numbers.notna()
    if wanted is None:
        return pd.Series(True, index=values.index)
    low = float(wanted)
    if kind == "notEqual":
        return ~(numbers == low)
    if kind == "greaterThan":
        return numbers > low
    if kind == "greaterThanOrEqual":
        return numbers >= low
    if kind == "lessThan":
        return numbers < low
    if kind == "lessThanOrEqual":
        return numbers <= low
    if kind == "inRange" and upper is not None:
        # AG Grid's inRange excludes both ends by default.
        return (numbers > low) & (numbers < float(upper))
    return numbers == low  # "equals"


def _condition(values: pd.Series, model: Mapping[str, Any]) -> pd.Series:
    if "conditions" in model:  # two conditions joined by AND / OR
        parts = [_condition(values, {"filterType": model.get("filterType"), **part})
                 for part in model["conditions"]]
        if not parts:
            return pd.Series(True, index=values.index)
        joined = parts[0]
        for part in parts[1:]:
            joined = (joined | part) if model.get("operator") == "OR" else (joined & part)
        return joined
    kind = str(model.get("type") or "contains")
    if model.get("filterType") == "number":
        return _number_condition(values, kind, model.get("filter"), model.get("filterTo"))
    return _text_condition(values, kind, model.get("filter"))


def filter_frame(frame: pd.DataFrame, filter_model: Mapping[str, Any] | None) -> pd.DataFrame:
    """Rows passing every column filter of an AG Grid filterModel (unknown columns ignored)."""
    if not filter_model:
        return frame
    keep = pd.Series(True, index=frame.index)
    for column, model in filter_model.items():
        if column in frame.columns and isinstance(model, Mapping):
            keep &= _condition(frame[column], model)
    return frame[keep]


def sort_frame(frame: pd.DataFrame, sort_model: Sequence[Mapping[str, Any]] | None,
               key: str | None = None) -> pd.DataFrame:
    """Rows in the order of an AG Grid sortModel (then by key, so pages never overlap)."""
    columns = [item["colId"] for item in sort_model or () if item.get("colId") in frame.columns]
    ascending = [item.get("sort") != "desc" for item in sort_model or ()
                 if item.get("colId") in frame.columns]
    if key is not None and key in frame.columns and key not in columns:
        if not columns and frame[key].is_monotonic_increasing:
            return frame  # already in key order (the stored rows are)
        columns.append(key)
        ascending.append(True)
    if not columns:
        return frame
    return frame.sort_values(columns, ascending=ascending, kind="mergesort", na_position="last")


def request_key(request: Mapping[str, Any] | None) -> str:
    """The parts of a getRowsRequest that decide its answer, as stable text (a cache key)."""
    request = check_grid_request(request)
    return json.dumps([request.get("startRow"), request.get("endRow"),
                       request.get("sortModel") or [], request.get("filterModel") or {}],
                      sort_keys=True, default=str)


def grid_block(frame: pd.DataFrame, request: Mapping[str, Any] | None,
               key: str | None = None) -> tuple[pd.DataFrame, int]:
    """(the requested block of rows, how many rows pass the filters) for a getRowsRequest;
    GridRequestError for a malformed one."""
    request = check_grid_request(request)
    chosen = sort_frame(filter_frame(frame, request.get("filterModel")),
                        request.get("sortModel"), key)
    start = max(int(request.get("startRow") or 0), 0)
    end = int(request.get("endRow") or start + 100)
    end = min(max(end, start), start + MAX_BLOCK)
    return chosen.iloc[start:end], len(chosen)
