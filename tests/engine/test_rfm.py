"""RFM by hand on tiny frames, balanced deterministic scores, and the two segment schemes."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engine.baskets import CodedLines
from engine.rfm import (
    EngineInputError,
    coded_customer_lines,
    codes_of,
    customer_lines,
    distinct_invoices,
    grid_segments,
    invoice_codes,
    quantile_scores,
    rfm_scores,
    rfm_segments,
    rfm_table,
    score_segments,
    text_codes,
)
from engine.settings import RfmSettings
from tests.engine.factories import line, lines_frame

NON_PRODUCT = ["POST", "D"]


def test_rfm_by_hand_with_returns_duplicates_missing_ids_and_non_products() -> None:
    lines = lines_frame([
        # A: two purchase invoices (one with two lines), one return, one postage line
        line("A", "100", "2011-01-10 09:00", 10.0),
        line("A", "100", "2011-01-10 09:00", 5.0, stock_code="P2"),
        line("A", "101", "2011-03-01 18:30", 20.0),
        line("A", "C102", "2011-03-05 10:00", -4.0),
        line("A", "101", "2011-03-01 18:30", 7.0, stock_code="POST"),
        # B: one invoice; its return is larger than the purchase (net negative)
        line("B", "200", "2011-02-01 12:00", 8.0),
        line("B", "C201", "2011-02-02 12:00", -12.0),
        # C: only returns in the window: no purchase, so no row
        line("C", "C300", "2011-02-10 12:00", -3.0),
        # D: only a discount line (non-product): no row
        line("D", "400", "2011-02-10 12:00", 9.0, stock_code="D"),
        # no customer id: left out of customer metrics
        line(None, "500", "2011-03-09 12:00", 99.0),
    ])
    table = rfm_table(lines, as_of=date(2011, 3, 10), non_product_codes=NON_PRODUCT)
    assert table["customer_id"].tolist() == ["A", "B"]
    a, b = table.iloc[0], table.iloc[1]
    assert (a.recency_days, a.frequency, a.monetary) == (9, 2, 31.0)  # 10+5+20-4
    assert (b.recency_days, b.frequency, b.monetary) == (37, 1, -4.0)
    assert a.tenure_days == 59 and a.first_purchase == pd.Timestamp("2011-01-10")


def test_recency_counts_calendar_days_not_hours() -> None:
    lines = lines_frame([line("A", "1", "2011-03-09 23:59", 1.0)])
    assert rfm_table(lines, as_of=date(2011, 3, 10))["recency_days"].tolist() == [1]


def test_a_return_with_positive_amount_still_subtracts() -> None:
    lines = lines_frame([line("A", "1", "2011-03-01", 10.0),
                         {**line("A", "C2", "2011-03-02", 3.0), "is_return": True}])
    assert rfm_table(lines, as_of=date(2011, 3, 10))["monetary"].tolist() == [7.0]


def test_as_of_before_the_last_purchase_is_refused() -> None:
    lines = lines_frame([line("A", "1", "2011-03-12", 10.0)])
    with pytest.raises(EngineInputError, match="before the last purchase"):
        rfm_table(lines, as_of=date(2011, 3, 10))


def test_missing_column_is_named() -> None:
    lines = lines_frame([line("A", "1", "2011-03-01", 10.0)]).drop(columns="is_return")
    with pytest.raises(EngineInputError, match="is_return"):
        rfm_table(lines, as_of=date(2011, 3, 10))


def test_scores_stay_balanced_with_heavy_ties() -> None:
    # 70% of the customers share frequency 1: bins still hold n/5 customers each.
    values = pd.Series([1] * 70 + [2] * 20 + list(range(3, 13)))
    keys = pd.Series([f"C{i:03d}" for i in range(100)])
    scores = quantile_scores(values, keys, 5)
    assert scores.value_counts().sort_index().tolist() == [20, 20, 20, 20, 20]
    # Higher value, never a lower score.
    ordered = pd.DataFrame({"v": values, "s": scores}).sort_values(["v", "s"])
    assert ordered["s"].is_monotonic_increasing


def test_scores_do_not_depend_on_row_order() -> None:
    values = pd.Series([1, 1, 1, 2, 2, 3, 1, 5])
    keys = pd.Series(list("hgfedcba"))
    first = pd.Series(quantile_scores(values, keys, 4).to_numpy(), index=keys)
    shuffled = [3, 0, 7, 5, 1, 6, 2, 4]
    second = pd.Series(quantile_scores(values[shuffled].reset_index(drop=True),
                                       keys[shuffled].reset_index(drop=True), 4).to_numpy(),
                       index=keys[shuffled])
    assert first.sort_index().equals(second.sort_index())


def test_recent_customers_get_high_r_scores_and_codes() -> None:
    table = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "e"],
                          "recency_days": [1, 10, 100, 200, 300],
                          "frequency": [9, 7, 5, 3, 1], "monetary": [500.0, 400, 300, 200, 100]})
    scored = rfm_scores(table, levels=5)
    assert scored["r_score"].tolist() == [5, 4, 3, 2, 1]
    assert scored["rfm_code"].tolist() == ["555", "444", "333", "222", "111"]
    assert scored["rfm_score"].tolist() == [555, 444, 333, 222, 111]


def test_score_bands_first_match() -> None:
    bands = RfmSettings().segments
    names = score_segments(pd.Series([555, 545, 544, 511, 443, 411, 333, 311, 231, 211, 121,
                                      111]), bands)
    assert names.tolist() == ["VIP", "VIP", "Loyal", "Loyal", "Potential Loyalists", "New",
                              "Promising", "Need Attention", "About To Sleep",
                              "Cannot Lose Them", "At-Risk", "Hibernating"]


def test_grid_first_match_and_fallback() -> None:
    grid = RfmSettings().grid_segments
    names = grid_segments(pd.Series([5, 5, 4, 3, 1, 1]), pd.Series([5, 1, 1, 3, 5, 1]), grid)
    assert names.tolist() == ["Champions", "Recent Customers", "Promising", "Need Attention",
                              "Cannot Lose Them", "Hibernating"]
    assert grid_segments(pd.Series([9]), pd.Series([9]), grid).tolist() == ["Other"]


customer_rows = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 40), st.integers(1, 500),
              st.booleans()),
    min_size=1, max_size=60,
)


@hypothesis_settings(max_examples=60, deadline=None)
@given(customer_rows, st.sampled_from([4, 5]))
def test_every_customer_gets_exactly_one_segment_of_each_scheme(rows, levels) -> None:
    lines = lines_frame([
        line(f"C{customer}", f"{customer}-{day}", pd.Timestamp("2011-01-01")
             + pd.Timedelta(days=day), float(amount))
        for customer, day, amount, _ in rows
    ] + [line(f"C{customer}", f"C{customer}-{day}", pd.Timestamp("2011-01-01")
              + pd.Timedelta(days=day), -1.0) for customer, day, _, returned in rows if returned])
    settings = RfmSettings(score_levels=levels)
    scored = rfm_segments(lines, as_of=date(2011, 3, 1), settings=settings)
    assert scored["customer_id"].is_unique
    assert set(scored["customer_id"]) == {f"C{row[0]}" for row in rows}
    for column in ("r_score", "f_score", "m_score"):
        assert scored[column].between(1, levels).all()
        counts = scored[column].value_counts()
        assert counts.max() - counts.min() <= 1 or len(counts) < levels
    assert scored["rfm_segment"].isin([band.name for band in settings.segments]).all()
    grid_names = {cell.name for cell in settings.grid_segments}
    if levels == 5:  # the default grid covers the whole 5x5 square
        assert scored["rfm_grid_segment"].isin(grid_names).all()
    else:
        assert scored["rfm_grid_segment"].isin(grid_names | {"Other"}).all()


@hypothesis_settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c10", "c9", None]), st.integers(0, 6),
                          st.integers(0, 40), st.integers(-20, 60),
                          st.sampled_from(["P1", "P2", "POST"])), min_size=1, max_size=60),
       st.booleans())
def test_rfm_table_equals_a_plain_groupby_of_the_customer_lines(rows, as_categories) -> None:
    lines = lines_frame([line(customer, f"{'C' if amount < 0 else ''}{invoice}",
                              pd.Timestamp("2011-01-01") + pd.Timedelta(days=day),
                              float(amount or 1), stock_code=code)
                         for customer, invoice, day, amount, code in rows])
    if as_categories:  # the store may hand text columns over as categories
        lines = lines.astype({"customer_id": "category", "invoice": "category",
                              "stock_code": "category"})
    as_of = date(2011, 3, 1)
    kept = customer_lines(lines, NON_PRODUCT)
    purchases = kept[~kept["is_return"]]
    grouped = purchases.groupby("customer_id", observed=True)
    expected = pd.DataFrame({
        "recency_days": (pd.Timestamp(as_of) - grouped["ts"].max().dt.normalize()).dt.days,
        "frequency": grouped["invoice"].nunique(),
        "monetary": kept.groupby("customer_id", observed=True)["net"].sum().round(2),
        "first_purchase": grouped["ts"].min().dt.normalize(),
    }).dropna(subset=["frequency"])
    table = rfm_table(lines, as_of=as_of, non_product_codes=NON_PRODUCT).set_index("customer_id")
    assert table.index.tolist() == sorted(expected.index.astype(str))
    for column in expected.columns:
        assert table[column].tolist() == expected[column].reindex(table.index).tolist(), column
    # The run codes the lines once (engine.baskets.CodedLines) and RFM reuses those codes.
    shared = coded_customer_lines(lines, NON_PRODUCT, CodedLines.of(lines, NON_PRODUCT))
    pd.testing.assert_frame_equal(
        rfm_table(lines, as_of=as_of, coded=shared).set_index("customer_id"), table)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "10", "9"])), min_size=1),
       st.permutations(["a", "b", "c", "10", "9"]))
def test_codes_of_a_categorical_are_those_of_its_values(values: list[str | None],
                                                        order: list[str]) -> None:
    """Sorted categories, all used (a window's history): taken as they are; otherwise (unsorted,
    unused ones) recoded. Either way the codes and texts of factorising the values."""
    for categories in (sorted(set(order)), order, sorted({v for v in values if v is not None})):
        present = {v for v in values if v is not None}
        column = pd.Series(pd.Categorical(values, categories=categories))
        codes, names = codes_of(column)
        expected_codes, expected_names = text_codes(*pd.factorize(column))
        assert codes.tolist() == expected_codes.tolist()
        assert list(names) == list(expected_names) == sorted(present)


def _scores_by_text_keys(values: pd.Series, keys: pd.Series, levels: int) -> list[int]:
    """quantile_scores' definition, plainly: ranks by (value, key as text), cut in equal bins."""
    order = np.lexsort((keys.astype(str).to_numpy(dtype=str), values.to_numpy(dtype=float)))
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(len(values))
    return (ranks * levels // max(len(values), 1) + 1).tolist()


@hypothesis_settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), min_size=1, max_size=40),
       st.sampled_from(["sorted text", "unsorted text", "numbers", "repeated"]),
       st.sampled_from([4, 5]))
def test_scores_rank_ties_by_the_key_as_text(rows, keys_kind, levels) -> None:
    """Keys already distinct and in text order are ranked by position (an RFM table); any
    other keys (unsorted, numbers, repeated) by their text, as before: the same scores."""
    values = pd.Series([value for value, _ in rows])
    n = len(rows)
    keys = pd.Series({"sorted text": sorted(f"c{i}" for i in range(n)),
                      "unsorted text": [f"c{i}" for i in range(n)],
                      "numbers": [n - i for i in range(n)],  # 10 before 9 as text
                      "repeated": [f"c{key}" for _, key in rows]}[keys_kind])
    assert quantile_scores(values, keys, levels).tolist() == _scores_by_text_keys(
        values, keys, levels)
    table = pd.DataFrame({"customer_id": keys, "recency_days": values, "frequency": values,
                          "monetary": values.astype(float)})
    scored = rfm_scores(table, levels=levels)
    assert scored["f_score"].tolist() == _scores_by_text_keys(values, keys, levels)
    assert scored["rfm_code"].tolist() == [f"{r}{f}{m}" for r, f, m in zip(
        scored["r_score"], scored["f_score"], scored["m_score"], strict=True)]


@hypothesis_settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 6))),
                min_size=1, max_size=50),
       st.sampled_from(["keys", "negative", "text"]))
def test_distinct_invoices_per_customer_whatever_the_invoice_codes(rows, kind) -> None:
    """Invoices as the columnar copy's wide integer keys (taken as they are), as integers
    with a negative one, or as text: each customer's distinct invoices are the same."""
    customers = np.array([customer for customer, _ in rows], dtype=np.int64)
    raw = [invoice for _, invoice in rows]
    if kind == "keys":  # 8 ASCII bytes read as one big-endian number: above 2**62
        column = pd.Series([None if i is None else 0x4300000000000000 + i for i in raw],
                           dtype="Int64")
    elif kind == "negative":
        column = pd.Series([None if i is None else i - 3 for i in raw], dtype="Int64")
    else:
        column = pd.Series([None if i is None else f"I{i}" for i in raw], dtype=object)
    codes = invoice_codes(column)
    assert ((codes >= 0) == column.notna().to_numpy()).all()
    if kind == "keys":
        assert codes[column.notna().to_numpy()].tolist() == column.dropna().tolist()
    expected = pd.DataFrame({"c": customers, "i": raw}).dropna().groupby("c")["i"].nunique()
    assert distinct_invoices(customers, codes, 5).tolist() == [
        int(expected.get(c, 0)) for c in range(5)]
