"""Sales KPIs, monthly trends and product figures (engine.store.sales) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest

from dashboard import frames
from engine import sales_figures
from engine.store import jobs, offer_results, results, runs, sales
from tests.engine.store.conftest import NON_PRODUCT


def test_kpis_and_monthly_trends(filled: Any) -> None:
    kpis = sales.kpis(engine=filled)
    assert kpis["revenue"] == pytest.approx(20 + 5 + 35 + 10 + 10 + 60 - 10 + 10)
    assert kpis["orders"] == 6  # distinct purchase invoices, the return is not an order
    assert kpis["customers"] == 3
    assert kpis["aov"] == pytest.approx(kpis["revenue"] / 6)
    january = sales.kpis(engine=filled, since=date(2011, 1, 1), until=date(2011, 1, 31))
    assert january["revenue"] == pytest.approx(80.0) and january["orders"] == 4
    assert january["customers"] == 2  # the 23:30 line on the 31st is inside the window

    monthly = sales.monthly_trends(engine=filled)
    assert list(monthly["month"]) == ["2011-01", "2011-02"]
    assert list(monthly["orders"]) == [4, 2]
    assert list(monthly["active_customers"]) == [2, 2]
    assert list(monthly["new_customers"]) == [2, 1]
    assert monthly["revenue"].tolist() == pytest.approx([80.0, 60.0])
    only_feb = sales.monthly_trends(engine=filled, since=date(2011, 2, 1))
    assert list(only_feb["month"]) == ["2011-02"]
    assert list(only_feb["new_customers"]) == [1]  # first purchases over every line
    firsts = sales.new_customers_by_month(engine=filled)
    assert dict(zip(firsts["month"], firsts["new_customers"], strict=True)) == {
        "2011-01": 2, "2011-02": 1}
    given = sales.monthly_trends(engine=filled, since=date(2011, 2, 1), new_customers=firsts)
    pd.testing.assert_frame_equal(given, only_feb)



def test_products_leave_out_non_product_codes(filled: Any) -> None:
    products, pairs = sales.window_products(engine=filled, non_product_codes=NON_PRODUCT)
    by_code = products.set_index("stock_code")
    assert "POST" not in by_code.index
    assert by_code.loc["A", "revenue"] == pytest.approx(20 + 10 - 10 + 10)
    assert by_code.loc["A", "quantity"] == pytest.approx(3)
    assert by_code.loc["A", "customers"] == 2
    assert by_code.loc["B", "description"] == "Bread bin"
    assert by_code.loc["B", "customers"] == 2

    # The dashboard's top products per group: the window's per-customer product figures
    # (customer_products) grouped by each customer's row of run 2.
    rows = results.customer_results(engine=filled, run_id=2)
    lines = pairs.astype({"customer_id": str, "stock_code": str}).merge(
        rows[["customer_id", "customer_class", "value_tier"]], on="customer_id")
    per_class = frames.top_products(lines, "customer_class", limit=1)
    assert dict(zip(per_class["group"], per_class["stock_code"], strict=True)) == {
        "High value": "B", "Negative": "A", "New": "B"}
    # Several groupings of the same lines: each the same rows as that grouping alone.
    both = {by: frames.top_products(lines, by, limit=3) for by in ("customer_class", "value_tier")}
    for by in ("customer_class", "value_tier"):
        alone = frames.top_products(lines, by, limit=3)
        pd.testing.assert_frame_equal(both[by], alone)
    assert list(both["value_tier"]["group"].unique()) == ["High value", "Low value"]
    # Counted on every possible (group, product) key, or on the distinct keys when there would
    # be too many possible ones: the same figures.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sales_figures, "DENSE_KEYS", 0)
        for by in ("customer_class", "value_tier"):
            pd.testing.assert_frame_equal(frames.top_products(lines, by, limit=3), both[by])
    # February only: bob's return of A (no purchase), alice's and carol's purchases.
    february, pairs = sales.window_products(engine=filled, non_product_codes=NON_PRODUCT,
                                            since=date(2011, 2, 1), until=date(2011, 2, 28))
    assert february.set_index("stock_code")["customers"].to_dict() == {"A": 1, "B": 1}
    assert february.set_index("stock_code")["revenue"].to_dict() == pytest.approx(
        {"A": 0.0, "B": 60.0})
    found = {(str(c), str(s)): (r, p) for c, s, r, p in pairs[
        ["customer_id", "stock_code", "revenue", "purchases"]].itertuples(index=False)}
    assert found == {("alice", "A"): (10.0, 1), ("bob", "A"): (-10.0, 0),
                     ("carol", "B"): (60.0, 1)}



def test_empty_database_gives_empty_answers(db: Any) -> None:
    assert runs.published_run(engine=db) is None
    assert sales.data_span(engine=db) is None
    assert sales.kpis(engine=db)["aov"] == 0.0
    assert sales.monthly_trends(engine=db).empty
    products, pairs = sales.window_products(engine=db, non_product_codes=NON_PRODUCT)
    assert products.empty and pairs.empty
    assert offer_results.offer_summary(engine=db)["delivery_rate"] is None
    assert jobs.job_history(engine=db).empty



def test_the_data_span_is_read_off_the_index_not_a_scan(filled: Any) -> None:
    """Every page asks for the first and last day: on SQLite each end is a search of the lines'
    index on ts (one SELECT of min and max together scanned all of it: 0.6 s at 10 M lines)."""
    assert sales.data_span(engine=filled) == (date(2011, 1, 5), date(2011, 2, 10))
    if filled.dialect.name != "sqlite":
        return  # PostgreSQL reads both ends of the index either way
    with filled.connect() as connection:
        sql = str(sales.span_statement().compile(filled, compile_kwargs={"literal_binds": True}))
        plan = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
    searches = [step for step in plan if step.startswith("SEARCH transaction_line")]
    assert len(searches) == 2 and not any(step.startswith("SCAN transaction_line")
                                          for step in plan), plan


def test_the_data_version_changes_with_every_loaded_file(filled: Any) -> None:
    """A file that adds no line with a higher id (a customers file; on PostgreSQL a load that
    commits after a later-numbered one) still changes the version every dashboard key carries:
    the sign-up dates and the default views' figures are kept until it changes."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from engine.store.tables import SOURCE_FILES

    before = sales.data_version(engine=filled)
    with filled.begin() as connection:
        connection.execute(insert(SOURCE_FILES).values(
            path="customers.csv", sha256="c" * 64, kind="customers",
            loaded_at=datetime.now(UTC), lines_read=4, lines_loaded=4))
    assert sales.data_version(engine=filled) != before
