"""Issue 19, items 1-3 and the header-only file: lines and customers that a real file should never
be allowed to put in the store. Each is a rejected line with its reason (the rest of the file
loads), the same on SQLite and PostgreSQL; a file with no line at all stores nothing."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from engine.ingest import IngestError, ingest_file
from engine.store.customers import load_customers
from engine.store.lines_read import load_lines
from tests.conftest import count_rows, make_settings
from tests.engine.test_ingest import GOOD_ROWS, HEADER, write_csv

CONFIG = '[ingest]\nrejects_dir = "rejects"\n'


def _report(summary_path: str | None) -> list[list[str]]:
    assert summary_path is not None
    return pd.read_csv(summary_path, dtype=str)[["line", "reason"]].values.tolist()


def test_an_amount_that_overflows_or_exceeds_the_ceiling_is_a_rejected_line(
        db, tmp_path: Path, db_url: str) -> None:
    """1e200 x 1e200 is an infinite amount: it loaded, and every later run failed with 'Input X
    contains infinity'. A finite figure beyond [ingest] max_abs_amount is as absurd."""
    settings = make_settings(tmp_path, db_url, CONFIG)
    rows = [
        GOOD_ROWS[0],
        "536370,22728,ALARM CLOCK,1e200,2010-12-01 08:45:00,1e200,12583,France",
        "536371,22729,ALARM CLOCK PINK,2,2010-12-01 08:46:00,1e12,12583,France",
        "536372,22730,ALARM CLOCK RED,-5e9,2010-12-01 08:47:00,1,12583,France",
        "536373,22731,ALARM CLOCK BLUE,100000,2010-12-01 08:48:00,100000,12583,France",
        GOOD_ROWS[4],
    ]
    summary = ingest_file(db, settings, write_csv(tmp_path / "absurd.csv", rows),
                          preset="online-retail")

    assert (summary.lines_read, summary.loaded, summary.rejected) == (6, 2, 4)
    reasons = _report(summary.rejects_path)
    assert [line for line, _ in reasons] == ["3", "4", "5", "6"]
    assert all("beyond" in reason and "1e+09" in reason for _, reason in reasons), reasons
    assert [reason.split()[0] for _, reason in reasons] == [
        "quantity", "unit_price", "quantity", "amount"]  # 1e5 x 1e5: each fine, not the product
    stored = load_lines(engine=db)
    assert all(math.isfinite(value) for value in stored["amount"])


def test_the_amount_ceiling_is_a_setting(db, tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, CONFIG + "max_abs_amount = 20.0\n")
    summary = ingest_file(db, settings, write_csv(tmp_path / "small.csv", GOOD_ROWS),
                          preset="online-retail")
    # amounts 15.3, 20.34, 11.1, -27.5 and 34.8: three beyond 20 either way
    assert (summary.loaded, summary.rejected) == (2, 3)
    assert sorted(load_lines(engine=db)["amount"]) == pytest.approx([11.1, 15.3])


def test_dates_outside_the_plausible_range_are_rejected_lines(db, tmp_path: Path,
                                                              db_url: str) -> None:
    """A line dated 2100 moved as_of to 2100-01-02; 1900 was accepted as well. After the load's
    own time (with a day's slack for time zones) or before [ingest] earliest_date: rejected."""
    settings = make_settings(tmp_path, db_url, CONFIG)
    soon = datetime.now() + timedelta(hours=12)  # within the day's slack: loads
    later = datetime.now() + timedelta(days=3)
    rows = [
        GOOD_ROWS[0],
        "536370,22728,ALARM CLOCK,2,2100-01-01 00:00:00,3.75,12583,France",
        "536371,22729,ALARM CLOCK PINK,2,1900-01-01 00:00:00,3.75,12583,France",
        f"536372,22730,ALARM CLOCK RED,2,{later:%Y-%m-%d %H:%M:%S},3.75,12583,France",
        f"536373,22731,ALARM CLOCK BLUE,2,{soon:%Y-%m-%d %H:%M:%S},3.75,12583,France",
        "536374,22732,ALARM CLOCK GREEN,2,1989-12-31 23:59:00,3.75,12583,France",
    ]
    summary = ingest_file(db, settings, write_csv(tmp_path / "dates.csv", rows),
                          preset="online-retail")

    assert (summary.lines_read, summary.loaded, summary.rejected) == (6, 2, 4)
    reasons = dict(_report(summary.rejects_path))
    assert reasons["3"].startswith("timestamp after the load") and "2100-01-01" in reasons["3"]
    assert reasons["5"].startswith("timestamp after the load")
    assert reasons["4"].startswith("timestamp before [ingest] earliest_date 1990-01-01")
    assert reasons["7"].startswith("timestamp before [ingest] earliest_date")
    assert load_lines(engine=db)["ts"].max() < pd.Timestamp(datetime.now() + timedelta(days=1))


def test_earliest_date_is_a_setting(db, tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, CONFIG + "earliest_date = 2010-12-02\n")
    summary = ingest_file(db, settings, write_csv(tmp_path / "early.csv", GOOD_ROWS),
                          preset="online-retail")
    assert (summary.loaded, summary.rejected) == (1, 4)  # only the 2010-12-02 line


CUSTOMERS_HEADER = "customer_id,first_name,phone,signup_date,country,sms_consent\n"


def test_a_customers_field_longer_than_its_column_is_a_rejected_line(db, tmp_path: Path,
                                                                     db_url: str) -> None:
    """PostgreSQL refused the whole file without naming a line, SQLite stored the value: now the
    line is rejected with its reason and the rest loads, the same on both."""
    settings = make_settings(tmp_path, db_url, CONFIG)
    transactions = write_csv(tmp_path / "t.csv", GOOD_ROWS)
    customers = tmp_path / "customers.csv"
    customers.write_text(
        CUSTOMERS_HEADER
        + "17850,Ann,+447400123401,2010-01-01,United Kingdom,true\n"
        + f"14527,{'A' * 101},+447400123402,2010-01-01,United Kingdom,true\n"
        + f"{'9' * 65},Bob,+447400123403,2010-01-01,United Kingdom,true\n"
        + f"17809,Cat,+447400123404,2010-01-01,{'F' * 65},true\n"
        + "12583,Dan,+447400123405,2010-01-01,France,true\n")

    summary = ingest_file(db, settings, transactions, preset="online-retail",
                          customers=customers)

    assert summary.customers is not None
    assert (summary.customers.lines_read, summary.customers.loaded,
            summary.customers.rejected) == (5, 2, 3)
    assert _report(summary.customers.rejects_path) == [
        ["3", f"first_name longer than 100 characters '{'A' * 40}'"],
        ["4", f"customer_id longer than 64 characters '{'9' * 40}'"],
        ["5", f"country longer than 64 characters '{'F' * 40}'"],
    ]
    stored = load_customers(engine=db).set_index("customer_id")
    assert stored.loc["17850", "first_name"] == "Ann" and stored.loc["12583", "first_name"] == "Dan"
    # 14527 and 17809 exist from their transaction lines, untouched by their rejected lines.
    assert stored.loc["14527", "first_name"] is None or pd.isna(stored.loc["14527", "first_name"])
    assert stored.loc["17809", "country"] == "France"
    assert "9" * 65 not in stored.index


def test_a_header_only_file_stores_nothing(db, settings, tmp_path: Path) -> None:
    """It added an empty source_file row (and a later real file of the same bytes... has no
    lines to add): a file without a single line is refused like an empty one."""
    source = tmp_path / "header.csv"
    source.write_text(HEADER)
    before = count_rows(db)
    with pytest.raises(IngestError, match=r"header\.csv: no lines after the header"):
        ingest_file(db, settings, source, preset="online-retail")
    assert count_rows(db) == before


def test_a_header_only_customers_file_stores_nothing(db, settings, tmp_path: Path) -> None:
    transactions = write_csv(tmp_path / "t.csv", GOOD_ROWS)
    customers = tmp_path / "customers.csv"
    customers.write_text(CUSTOMERS_HEADER)
    before = count_rows(db)
    with pytest.raises(IngestError, match=r"customers\.csv: no lines after the header"):
        ingest_file(db, settings, transactions, preset="online-retail", customers=customers)
    assert count_rows(db) == before
