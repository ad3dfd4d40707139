"""A run's sales figures (engine.sales_figures on pandas, engine/spark/sales.py on Spark) on lines
worked out by hand: every line counts for revenue, customerless ones too; returns are not orders
nor buyers; a month's new customers come from the history; non-product codes are no products."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engine.sales_figures import (
    SalesFigures,
    distinct_inverse,
    group_products,
    sales_figures,
    sorted_with_order,
)
from tests.engine.factories import line, lines_frame

CODES = ["POST"]

# January: alice buys twice (one invoice with postage), bob once at 23:30 on the 31st, one line
# without a customer. February: carol is new, bob returns his item, alice buys again.
LINES = lines_frame([
    line("alice", "1001", "2011-01-05 10:00:00", 20.0, stock_code="A", quantity=2),
    line("alice", "1001", "2011-01-05 10:00:00", 5.0, stock_code="POST"),
    line("alice", "1002", "2011-01-20 12:00:00", 35.0, stock_code="B"),
    line("bob", "1003", "2011-01-31 23:30:00", 10.0, stock_code="A"),
    line(None, "1004", "2011-01-15 09:00:00", 10.0, stock_code="C", quantity=4),
    line("carol", "1005", "2011-02-01 00:10:00", 60.0, stock_code="B", quantity=2),
    line("bob", "C1006", "2011-02-03 08:00:00", -10.0, stock_code="A"),
    line("alice", "1007", "2011-02-10 16:00:00", 10.0, stock_code="A"),
])
ASSIGNMENTS = pd.DataFrame({"customer_id": ["alice", "bob", "carol"],
                            "customer_class": ["High value", "Negative", "New"],
                            "cluster": [0, 1, 1]})


def figures_on(backend: str, window: pd.DataFrame, history: pd.DataFrame, tmp_path: Path,
               spark: Any) -> tuple[SalesFigures, pd.DataFrame]:
    if backend == "pandas":
        return (sales_figures(window, history, non_product_codes=CODES, has_products=True),
                group_products(window, ASSIGNMENTS, non_product_codes=CODES))
    from engine.spark import sales
    from engine.spark.read import read_parquet

    def frame(lines: pd.DataFrame, name: str) -> Any:
        path = tmp_path / f"{name}.parquet"
        lines.to_parquet(path, coerce_timestamps="us", allow_truncated_timestamps=True)
        return read_parquet(spark, str(path))
    spark_window, spark_history = frame(window, "window"), frame(history, "history")
    return (sales.sales_figures(spark_window, spark_history, non_product_codes=CODES,
                                has_products=True),
            sales.group_products(spark, spark_window, ASSIGNMENTS, non_product_codes=CODES))


@pytest.fixture(params=["pandas", pytest.param("spark", marks=pytest.mark.spark)])
def figures(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    spark = request.getfixturevalue("spark") if request.param == "spark" else None
    return lambda window, history: figures_on(request.param, window, history, tmp_path, spark)


def test_totals_months_and_products_by_hand(figures: Any) -> None:
    made, groups = figures(LINES, LINES)
    assert made.totals == {"revenue": 140.0, "orders": 6, "customers": 3, "lines": 8}
    assert made.kpis()["aov"] == pytest.approx(140 / 6)
    expected_months = pd.DataFrame({
        "month": ["2011-01", "2011-02"], "revenue": [80.0, 60.0], "orders": [4, 2],
        "active_customers": [2, 2], "new_customers": [2, 1]})
    pd.testing.assert_frame_equal(made.months, expected_months, check_dtype=False)
    expected_products = pd.DataFrame({
        "stock_code": ["A", "B", "C"], "revenue": [30.0, 95.0, 10.0],
        "quantity": [3.0, 3.0, 4.0], "customers": [2, 2, 0]})
    pd.testing.assert_frame_equal(made.products, expected_products, check_dtype=False)
    assert made.non_product_codes == ("POST",)
    # bob's return cancels his A's revenue, yet he bought it once: a buying customer.
    expected_groups = pd.DataFrame({
        "grouping": ["cluster"] * 4 + ["customer_class"] * 4,
        "group": ["0", "0", "1", "1", "High value", "High value", "Negative", "New"],
        "stock_code": ["A", "B", "A", "B", "A", "B", "A", "B"],
        "revenue": [30.0, 35.0, 0.0, 60.0, 30.0, 35.0, 0.0, 60.0],
        "customers": [1, 1, 1, 1, 1, 1, 1, 1]})
    pd.testing.assert_frame_equal(groups, expected_groups, check_dtype=False)


def test_a_later_window_counts_new_customers_from_the_history(figures: Any) -> None:
    february = LINES[LINES["ts"] >= pd.Timestamp(date(2011, 2, 1))].reset_index(drop=True)
    made, groups = figures(february, LINES)
    # alice bought in January: not new in February although her first line in the window is.
    assert made.months.to_dict("list") == {
        "month": ["2011-02"], "revenue": [60.0], "orders": [2], "active_customers": [2],
        "new_customers": [1]}
    assert made.totals == {"revenue": 60.0, "orders": 2, "customers": 2, "lines": 3}
    assert made.products["stock_code"].tolist() == ["A", "B"]
    assert made.products["customers"].tolist() == [1, 1]  # alice's A; bob only returned his
    assert set(groups["stock_code"]) == {"A", "B"}


def test_lines_without_quantity_give_products_without_one(figures: Any) -> None:
    made, _ = figures(LINES.drop(columns=["quantity", "unit_price"]), LINES)
    assert made.products["quantity"].isna().all()
    assert made.products["revenue"].tolist() == [30.0, 95.0, 10.0]


def test_without_stock_codes_there_are_no_product_figures() -> None:
    lines = LINES.assign(stock_code=None)
    made = sales_figures(lines, lines, non_product_codes=CODES, has_products=False)
    assert made.products is None and made.totals["revenue"] == 140.0
    assert np.array_equal(made.months["orders"], [4, 2])


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 40), st.integers(-3, 2**62), st.just(2**60)),
                max_size=60))
def test_keys_sort_with_their_stable_order_packed_or_not(values: list[int]) -> None:
    """Small non-negative keys are sorted packed with their positions, others by argsort: the
    same sorted keys, order and distinct keys with their inverse as numpy's."""
    keys = np.array(values, dtype=np.int64)
    ordered, order = sorted_with_order(keys)
    assert ordered.tolist() == np.sort(keys).tolist()
    assert order.tolist() == np.argsort(keys, kind="stable").tolist()
    distinct, inverse = distinct_inverse(keys)
    expected, expected_inverse = np.unique(keys, return_inverse=True)
    assert distinct.tolist() == expected.tolist()
    assert inverse.tolist() == expected_inverse.reshape(-1).tolist()
