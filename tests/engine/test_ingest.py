"""Ingest into real SQLite files and a private PostgreSQL schema: idempotency, rejects, formats."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from engine.ingest import PRESETS, IngestError, ingest_file
from engine.ingest.readers import read_file
from engine.ingest.transactions import stage_lines
from engine.store.customers import load_customers
from engine.store.lines_read import load_lines
from tests.conftest import count_rows, make_settings

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
GOOD_ROWS = [
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,,United Kingdom",
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,United Kingdom",
    "536380,22961,JAM MAKING SET PRINTED,24,2010-12-02 09:41:00,1.45,17809,France",
]


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(row + "\n" for row in rows))
    return path


def test_loads_lines_products_and_customers(db, settings, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "retail.csv", GOOD_ROWS)
    summary = ingest_file(db, settings, source, preset="online-retail")

    counted = (summary.lines_read, summary.loaded, summary.duplicates, summary.rejected)
    assert counted == (5, 5, 0, 0)
    lines = load_lines(engine=db)
    assert list(lines.columns) == ["invoice", "stock_code", "description", "quantity",
                                   "unit_price", "amount", "ts", "customer_id", "country",
                                   "is_return"]
    assert lines["customer_id"].tolist() == ["17850", "17850", None, "14527", "17809"]
    assert lines["is_return"].tolist() == [False, False, False, True, False]
    assert lines["amount"].tolist() == pytest.approx([15.3, 20.34, 11.1, -27.5, 34.8])
    assert lines["ts"].iloc[0] == pd.Timestamp("2010-12-01 08:26:00")
    customers = load_customers(engine=db)
    assert customers.set_index("customer_id")["country"].to_dict() == {
        "14527": "United Kingdom", "17809": "France", "17850": "United Kingdom"}
    assert count_rows(db)["product"] == 5


def test_same_file_twice_adds_nothing_and_same_lines_elsewhere_are_duplicates(
        db, settings, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    ingest_file(db, settings, first)
    before = count_rows(db)

    again = ingest_file(db, settings, first)
    assert again.already_loaded and again.loaded == 0
    assert count_rows(db) == before

    # Another file (different bytes) repeating three stored lines and adding one new line.
    new_line = "536390,22139,RETROSPOT TEA SET,2,2010-12-03 10:00:00,4.95,17850,United Kingdom"
    second = write_csv(tmp_path / "b.csv", [*GOOD_ROWS[:3], new_line])
    summary = ingest_file(db, settings, second)
    assert (summary.lines_read, summary.loaded, summary.duplicates) == (4, 1, 3)
    assert count_rows(db)["transaction_line"] == before["transaction_line"] + 1


def test_rejects_report_names_physical_line_and_reason(db, tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, '[ingest]\nrejects_dir = "rejects"\n')
    rows = [
        GOOD_ROWS[0],
        "536365,71053,WHITE METAL LANTERN,6,2010-13-45 08:26:00,3.39,17850,United Kingdom",
        GOOD_ROWS[0],  # exact duplicate of line 2
        "536366,22633,HAND WARMER,six,2010-12-01 08:28:00,1.85,17850,United Kingdom",
        ",22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,17850,United Kingdom",
        "",
        "536367,22745,POPPY'S PLAYHOUSE,6,2010-12-01 08:34:00,,13047,United Kingdom",
        GOOD_ROWS[4],
    ]
    source = write_csv(tmp_path / "mixed.csv", rows)
    summary = ingest_file(db, settings, source, preset="online-retail")

    counted = (summary.lines_read, summary.loaded, summary.duplicates, summary.rejected)
    assert counted == (8, 2, 1, 5)
    assert summary.lines_read == summary.loaded + summary.duplicates + summary.rejected
    report = pd.read_csv(summary.rejects_path, dtype=str)
    assert Path(summary.rejects_path).parent == tmp_path / "rejects"
    assert report[["line", "reason"]].values.tolist() == [
        ["3", "bad timestamp '2010-13-45 08:26:00'"],
        ["5", "non-numeric quantity 'six'"],
        ["6", "missing invoice"],
        ["7", "empty line"],
        ["8", "missing unit_price"],
    ]


def test_quoted_newline_keeps_physical_line_numbers(db, settings, tmp_path: Path) -> None:
    rows = ['536365,85123A,"TWO\nLINES",6,2010-12-01 08:26:00,2.55,17850,United Kingdom',
            "536365,71053,WHITE METAL LANTERN,6,not a date,3.39,17850,United Kingdom"]
    summary = ingest_file(db, settings, write_csv(tmp_path / "nl.csv", rows))
    report = pd.read_csv(summary.rejects_path, dtype=str)
    assert report["line"].tolist() == ["4"]  # the header is line 1, the quoted record 2..3


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_csv_the_fast_reader_leaves_to_pandas_still_loads(db, settings, tmp_path: Path,
                                                          encoding: str) -> None:
    # A line of spaces and a short row stop Arrow's CSV reader (as Windows-1252 text does);
    # pandas reads such files: the short row's missing cells are empty, the blank line rejected.
    text = (HEADER + GOOD_ROWS[0] + "\n   \n"
            + "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,17850\n"
            + "536367,22745,CAF\u00c9 SET,6,2010-12-01 08:34:00,2.1,13047,France\n")
    path = tmp_path / "fallback.csv"
    path.write_bytes(text.encode(encoding))
    summary = ingest_file(db, settings, path, preset="online-retail")
    counted = (summary.lines_read, summary.loaded, summary.duplicates, summary.rejected)
    assert counted == (4, 3, 0, 1)
    report = pd.read_csv(summary.rejects_path, dtype=str)
    assert report[["line", "reason"]].values.tolist() == [["3", "empty line"]]
    lines = load_lines(engine=db)
    assert lines["description"].tolist() == ["WHITE HANGING HEART", "HAND WARMER", "CAF\u00c9 SET"]
    assert lines["country"].tolist() == ["United Kingdom", None, "France"]


def test_generic_preset_without_invoices_or_stock_codes(db, tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, """
[ingest.mapping]
customer_id = "client"
timestamp = "when"
invoice = ""
stock_code = ""
description = ""
quantity = ""
unit_price = ""
amount = "total"
country = ""
timestamp_format = "%d/%m/%Y %H:%M"
""")
    rows = ["a1,03/01/2024 10:00,12.50", "a1,04/01/2024 11:00,-5", "b2,04/01/2024 11:00,7"]
    source = write_csv(tmp_path / "pos.csv", rows, header="client,when,total\n")
    summary = ingest_file(db, settings, source, preset="generic")
    assert summary.loaded == 3 and summary.notes
    lines = load_lines(engine=db)
    assert lines["stock_code"].isna().all()
    assert lines["invoice"].nunique() == 3  # each line its own order
    assert lines["amount"].tolist() == [12.5, -5.0, 7.0]
    assert lines["is_return"].tolist() == [False, True, False]
    assert lines["ts"].tolist() == [pd.Timestamp("2024-01-03 10:00"),
                                    pd.Timestamp("2024-01-04 11:00"),
                                    pd.Timestamp("2024-01-04 11:00")]


def test_products_keep_latest_description(db, settings, tmp_path: Path) -> None:
    rows = ["1,A1,OLD NAME,1,2010-12-01 08:00:00,1.0,1,UK",
            "2,A1,NEW NAME,1,2010-12-05 08:00:00,1.0,1,UK",
            "3,B2,,1,2010-12-05 08:00:00,1.0,1,UK"]
    ingest_file(db, settings, write_csv(tmp_path / "p.csv", rows))
    with db.connect() as connection:
        products = dict(connection.exec_driver_sql(
            "SELECT stock_code, description FROM product").fetchall())
    assert products == {"A1": "NEW NAME", "B2": None}


@pytest.mark.parametrize("suffix", ["xlsx", "parquet", "csv.gz"])
def test_other_formats_store_the_same_lines_as_csv(db, settings, tmp_path: Path,
                                                   suffix: str) -> None:
    csv_path = write_csv(tmp_path / "base.csv", GOOD_ROWS)
    frame = pd.read_csv(csv_path, dtype={"CustomerID": "Int64", "InvoiceNo": str})
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    other = tmp_path / f"copy.{suffix}"
    if suffix == "xlsx":
        frame.to_excel(other, index=False)
    elif suffix == "parquet":
        frame.to_parquet(other, index=False)
    else:
        other.write_bytes(gzip.compress(csv_path.read_bytes()))

    first = ingest_file(db, settings, other, preset="online-retail")
    assert (first.loaded, first.rejected) == (5, 0)
    stored = load_lines(engine=db)
    # The CSV holds the same lines, so every one of them is a duplicate of what is stored.
    second = ingest_file(db, settings, csv_path, preset="online-retail")
    assert (second.loaded, second.duplicates) == (0, 5)
    assert stored["customer_id"].tolist() == ["17850", "17850", None, "14527", "17809"]


def test_load_lines_window_is_inclusive_by_day(db, settings, tmp_path: Path) -> None:
    ingest_file(db, settings, write_csv(tmp_path / "w.csv", GOOD_ROWS))
    assert len(load_lines(engine=db, since=date(2010, 12, 2))) == 1
    assert len(load_lines(engine=db, until=date(2010, 12, 1))) == 4
    assert len(load_lines(engine=db, since=date(2010, 12, 1), until=date(2010, 12, 1))) == 4
    assert len(load_lines(engine=db, since=date(2010, 12, 3))) == 0


def test_load_lines_reads_only_the_columns_asked_for(db, settings, tmp_path: Path) -> None:
    ingest_file(db, settings, write_csv(tmp_path / "c.csv", GOOD_ROWS))
    everything = load_lines(engine=db, until=date(2010, 12, 1))
    some = load_lines(engine=db, until=date(2010, 12, 1),
                      columns=("is_return", "ts", "customer_id", "amount", "description"))
    # LINE_COLUMNS order, whatever order they were asked in; the same cells and types.
    assert list(some.columns) == ["description", "amount", "ts", "customer_id", "is_return"]
    pd.testing.assert_frame_equal(some, everything[list(some.columns)])
    with pytest.raises(ValueError, match="unknown columns.*'price'"):
        load_lines(engine=db, columns=("ts", "price"))
    with pytest.raises(ValueError, match="no columns"):
        load_lines(engine=db, columns=())


def test_customers_file_normalises_phones_and_keeps_bad_ones(db, tmp_path: Path,
                                                              db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, '[ingest]\nrejects_dir = "rejects"\n')
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "customer_id,first_name,phone,signup_date,country,sms_consent,timezone\n"
        "17850,Ann,07700 900123,2010-11-01,United Kingdom,yes,Europe/London\n"
        "14527,Bob,+1 202 555 0188,2010-10-01,United States,true,America/New_York\n"
        "17809,Cy,12345,2010-09-01,France,false,Mars/Base\n"
        ",Nobody,+447700900001,2010-09-01,United Kingdom,true,\n"
    )
    summary = ingest_file(db, settings, write_csv(tmp_path / "t.csv", GOOD_ROWS),
                          customers=customers)
    assert summary.customers is not None
    assert (summary.customers.loaded, summary.customers.rejected, summary.customers.flagged) \
        == (3, 2, 1)
    frame = load_customers(engine=db).set_index("customer_id")
    assert frame.loc["17850", "phone"] == "+447700900123"
    assert frame.loc["17850", "phone_status"] == "valid"
    assert frame.loc["14527", "phone"] == "+12025550188"
    assert frame.loc["17809", "phone_status"] == "invalid"
    assert frame.loc["17809", "timezone"] is None
    assert frame["sms_consent"].to_dict() == {"14527": True, "17809": False, "17850": True}
    assert frame.loc["17850", "signup_date"] == pd.Timestamp("2010-11-01")
    report = pd.read_csv(summary.customers.rejects_path, dtype=str)
    assert report[["line", "reason"]].values.tolist() == [
        ["4", "invalid phone '12345'"], ["5", "missing customer_id"]]


def test_spreadsheet_float_ids_name_one_customer_in_both_files(db, settings,
                                                              tmp_path: Path) -> None:
    # 17850.0 and 17850.00 (a float column exported by a spreadsheet) are customer 17850 in a
    # transactions file and a customers file alike; 17850.5 and 1785O.0 are ids as written.
    rows = [GOOD_ROWS[0].replace(",17850,", ",17850.0,"),
            GOOD_ROWS[1].replace(",17850,", ",17850.00,"),
            GOOD_ROWS[4].replace(",17809,", ",17850.5,"),
            GOOD_ROWS[2].replace(",,", ",1785O.0,")]
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,first_name\n17850.00,Ann\n")
    ingest_file(db, settings, write_csv(tmp_path / "t.csv", rows), customers=customers)
    assert load_lines(engine=db)["customer_id"].tolist() == ["17850", "17850", "17850.5", "1785O.0"]
    frame = load_customers(engine=db).set_index("customer_id")
    assert sorted(frame.index) == ["17850", "17850.5", "1785O.0"]
    assert frame.loc["17850", "first_name"] == "Ann"


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, "file not found"),
    ("notes.txtx", b"x", "unknown file format"),
    ("cols.csv", b"a,b\n1,2\n", "missing column(s) InvoiceNo"),
    ("trunc.csv.gz", gzip.compress(((HEADER + GOOD_ROWS[0] + "\n") * 50).encode())[:-30],
     "truncated gzip"),
    ("bad.xlsx", b"PK\x03\x04 not really a workbook", "not a readable XLSX"),
    ("bad.parquet", b"PAR1 nope", "not a readable Parquet"),
])
def test_unusable_files_raise_one_line_and_leave_the_database(db, settings, tmp_path: Path,
                                                              name, content, message) -> None:
    ingest_file(db, settings, write_csv(tmp_path / "ok.csv", GOOD_ROWS))
    before = count_rows(db)
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(IngestError) as error:
        ingest_file(db, settings, path, preset="online-retail")
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text
    assert count_rows(db) == before


def test_bad_customers_file_rolls_back_the_transactions_file_too(db, settings,
                                                                  tmp_path: Path) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text("id,name\n1,Ann\n")
    with pytest.raises(IngestError, match="missing column.*customer_id"):
        ingest_file(db, settings, write_csv(tmp_path / "t.csv", GOOD_ROWS), customers=customers)
    assert count_rows(db) == {"source_file": 0, "transaction_line": 0, "product": 0, "customer": 0}


rows = st.lists(st.tuples(
    st.sampled_from(["536365", "C536366", "", "x"]),
    st.sampled_from(["85123A", "POST", ""]),
    st.sampled_from(["6", "-2", "abc", "", "1.5"]),
    st.sampled_from(["2010-12-01 08:26:00", "2011-02-30 10:00:00", "", "12/1/2010 8:26"]),
    st.sampled_from(["2.55", "0", "", "n/a"]),
    st.sampled_from(["17850", "", "17850.0"]),
), max_size=30)


@hypothesis_settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows)
def test_every_line_is_loaded_duplicate_or_rejected(tmp_path: Path, rows) -> None:
    text = HEADER + "".join(f"{inv},{code},D,{qty},{ts},{price},{cid},UK\n"
                            for inv, code, qty, ts, price, cid in rows)
    path = tmp_path / "h.csv"
    path.write_text(text)
    staged, rejects = stage_lines(read_file(path), PRESETS["online-retail"])
    assert staged.lines_read == len(rows)
    assert len(staged.lines) + staged.duplicates + staged.rejected == len(rows)
    assert len(rejects) == staged.rejected
    assert staged.lines["line_hash"].is_unique
    assert set(rejects["line"]) <= set(range(2, len(rows) + 2))
    # The Arrow copies of the text columns (what the SQLite staging takes) hold the same rows.
    assert {"invoice", "stock_code", "description", "country"} <= set(staged.text_arrays)
    for name, array in staged.text_arrays.items():
        assert array.to_pylist() == staged.lines[name].tolist(), name


def test_sqlite_load_leaves_foreign_keys_checked(db, settings, tmp_path: Path) -> None:
    # The SQLite load switches the per-row foreign key look-up off for its own transaction.
    ingest_file(db, settings, write_csv(tmp_path / "a.csv", GOOD_ROWS))
    if db.dialect.name != "sqlite":
        return
    for _ in range(3):  # whichever pooled connection comes back
        with db.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.realdata
@pytest.mark.slow
def test_real_file_accounts_for_every_line(db, settings, real_data: Path) -> None:
    summary = ingest_file(db, settings, real_data)
    assert summary.preset == "online-retail"
    assert summary.lines_read == 541_909
    assert summary.loaded + summary.duplicates + summary.rejected == 541_909
    assert (summary.loaded, summary.duplicates, summary.rejected) == (536_641, 5_268, 0)
    counts = count_rows(db)
    assert counts["transaction_line"] == 536_641
    assert counts["customer"] == 4_372
    assert counts["product"] == 4_070
    lines = load_lines(engine=db)
    assert lines["customer_id"].dropna().nunique() == 4_372
    assert lines["invoice"].nunique() == 25_900
    assert ingest_file(db, settings, real_data).already_loaded


def test_load_lines_returns_what_was_staged_even_after_many_empty_cells(
        db, settings, tmp_path: Path) -> None:
    # The columnar SQLite reader infers a column's type from its first rows: 70,000 lines
    # without customer, stock code or description must not turn those columns numeric.
    rows = [f"{600000 + n // 5},,,{n % 7 + 1},2011-01-0{n % 9 + 1} 10:00:00,1.25,,Spain"
            for n in range(70_000)]
    rows += ["536365,85123A, WHITE HEART ,6,2011-02-01 08:26:00,2.55,17850.0,United Kingdom",
             "C536366,22633,HAND WARMER,-2,2011-02-02 08:28:00,1.85,12345,"]
    source = write_csv(tmp_path / "sparse.csv", rows)
    staged, _ = stage_lines(read_file(source), PRESETS["online-retail"])
    ingest_file(db, settings, source, preset="online-retail")

    lines = load_lines(engine=db)
    expected = staged.lines.drop(columns=["line_hash", "line_no"])
    pd.testing.assert_frame_equal(lines, expected)
    assert lines["customer_id"].iloc[0] is None
    assert lines["customer_id"].tail(2).tolist() == ["17850", "12345"]
    assert lines["description"].iloc[-2] == "WHITE HEART"
    assert lines["country"].iloc[-1] is None
    assert lines["is_return"].tail(2).tolist() == [False, True]
    assert len(load_lines(engine=db, since=date(2030, 1, 1))) == 0


@pytest.mark.postgres
def test_a_load_into_postgresql_leaves_the_planner_statistics_current(
        postgres_url: str, tmp_path: Path) -> None:
    """ANALYZE after the load (autovacuum may be off, as on the test server): the grown tables
    have statistics at once; a file already loaded analyses nothing again."""
    from sqlalchemy import text

    from engine.store import get_engine, init_db

    engine = get_engine(postgres_url)
    init_db(engine=engine)
    settings = make_settings(tmp_path, postgres_url)
    query = text("SELECT relname, last_analyze FROM pg_stat_user_tables "
                 "WHERE schemaname = current_schema() AND relname IN "
                 "('transaction_line', 'invoice_day', 'customer')")

    def analysed() -> dict[str, object]:
        with engine.connect() as connection:
            return dict(connection.execute(query).all())
    assert not any(analysed().values())
    source = write_csv(tmp_path / "retail.csv", GOOD_ROWS)
    ingest_file(engine, settings, source, preset="online-retail")
    first = analysed()
    assert all(first[table] is not None for table in ("transaction_line", "invoice_day",
                                                      "customer"))
    ingest_file(engine, settings, source, preset="online-retail")  # nothing new
    assert analysed() == first
    engine.dispose()
