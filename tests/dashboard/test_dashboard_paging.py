"""Server-side rows of the paged customer table, and table rows as JSON, without a browser."""

from __future__ import annotations

import json
from datetime import date, datetime

import numpy as np
import pandas as pd

from dashboard.components import json_records
from dashboard.paging import MAX_BLOCK, grid_block, request_key

ROWS = pd.DataFrame({
    "customer_id": [f"{12000 + i}" for i in range(250)],
    "monetary": [float((i * 37) % 101) for i in range(250)],
    "frequency": [i % 7 for i in range(250)],
    "rfm_segment": ["VIP" if i % 5 == 0 else "At-Risk" if i % 5 == 1 else "Loyal"
                    for i in range(250)],
})


def _ids(block: pd.DataFrame) -> list[str]:
    return list(block["customer_id"])


def test_pages_are_consecutive_slices_of_all_rows() -> None:
    first, count = grid_block(ROWS, {"startRow": 0, "endRow": 100})
    second, _ = grid_block(ROWS, {"startRow": 100, "endRow": 200})
    last, _ = grid_block(ROWS, {"startRow": 200, "endRow": 300})
    assert count == 250
    assert _ids(first) + _ids(second) + _ids(last) == list(ROWS["customer_id"])
    assert len(last) == 50
    huge, _ = grid_block(ROWS, {"startRow": 0, "endRow": 10_000})
    assert len(huge) == min(MAX_BLOCK, 250)


def test_sort_covers_every_row_with_the_key_breaking_ties() -> None:
    request = {"startRow": 0, "endRow": 20, "sortModel": [{"colId": "monetary", "sort": "desc"}]}
    block, count = grid_block(ROWS, request, key="customer_id")
    expected = ROWS.sort_values(["monetary", "customer_id"], ascending=[False, True]).head(20)
    assert count == 250 and _ids(block) == _ids(expected)
    assert block["monetary"].iloc[0] == ROWS["monetary"].max()
    pages = [grid_block(ROWS, {**request, "startRow": s, "endRow": s + 20}, key="customer_id")[0]
             for s in range(0, 260, 20)]
    assert sorted(sum((_ids(p) for p in pages), [])) == sorted(ROWS["customer_id"])


def test_text_and_number_filters_and_their_combinations() -> None:
    text = {"rfm_segment": {"filterType": "text", "type": "contains", "filter": "vi"}}
    block, count = grid_block(ROWS, {"startRow": 0, "endRow": 500, "filterModel": text})
    assert count == 50 and set(block["rfm_segment"]) == {"VIP"}
    both = {**text, "monetary": {"filterType": "number", "type": "greaterThan", "filter": 50}}
    block, count = grid_block(ROWS, {"startRow": 0, "endRow": 500, "filterModel": both})
    expected = ROWS[(ROWS["rfm_segment"] == "VIP") & (ROWS["monetary"] > 50)]
    assert count == len(expected) > 0 and _ids(block) == _ids(expected)
    either = {"frequency": {"filterType": "number", "operator": "OR", "conditions": [
        {"filterType": "number", "type": "equals", "filter": 0},
        {"filterType": "number", "type": "inRange", "filter": 4, "filterTo": 6}]}}
    block, count = grid_block(ROWS, {"startRow": 0, "endRow": 500, "filterModel": either})
    assert set(block["frequency"]) == {0, 5} and count == int(ROWS["frequency"].isin([0, 5]).sum())
    none = {"rfm_segment": {"filterType": "text", "type": "equals", "filter": "nobody"}}
    block, count = grid_block(ROWS, {"startRow": 0, "endRow": 20, "filterModel": none})
    assert count == 0 and block.empty


def test_request_key_ignores_what_does_not_change_the_answer() -> None:
    one = {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}, "context": None}
    assert request_key(one) == request_key({"startRow": 0, "endRow": 100})
    assert request_key(one) != request_key({"startRow": 100, "endRow": 200})


def test_json_records_are_plain_json() -> None:
    frame = pd.DataFrame({
        "n": [1, 2], "x": [1.5, np.nan], "text": ["a", None],
        "ts": pd.to_datetime(["2024-01-01 10:00", None]),
        "day": [date(2024, 1, 2), datetime(2024, 1, 1, 5, 6)],
        "maybe": pd.array([1, None], dtype="Int64"),
    })
    records = json_records(frame)
    assert records == [
        {"n": 1, "x": 1.5, "text": "a", "ts": "2024-01-01 10:00", "day": "2024-01-02",
         "maybe": 1},
        {"n": 2, "x": None, "text": None, "ts": None, "day": "2024-01-01 05:06", "maybe": None},
    ]
    assert json.loads(json.dumps(records)) == records
