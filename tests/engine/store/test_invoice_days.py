"""The invoice_day summary stays equal to the lines it sums (SQLite and PostgreSQL): when lines
arrive later for days and invoices already summed, when a load rolls back, when the settings name
other non-product codes, and across migration 0007 (a store at 0006 with lines, upgraded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import Engine, select, text

from engine.ingest import ingest_file
from engine.ingest.presets import choose_preset
from engine.ingest.readers import file_sha256, read_file
from engine.ingest.transactions import stage_lines
from engine.rfm import REQUIRED_LINE_COLUMNS, rfm_segments
from engine.settings import Settings
from engine.store import invoice_days
from engine.store.db import StoreError, _alembic_config, current_revision
from engine.store.lines_read import load_lines
from engine.store.lines_write import write_files
from engine.store.staged import StagedFile
from engine.store.tables import INVOICE_DAYS, read_frame
from tests.conftest import make_settings

HEADER = "invoice,stock_code,description,quantity,unit_price,timestamp,customer_id,country\n"
FIRST = HEADER + """\
1001,A,Apple mug,2,10.0,2011-01-05 10:00:00,alice,United Kingdom
1001,POST,Postage,1,5.0,2011-01-05 10:00:00,alice,United Kingdom
1002,K,Kettle,1,35.0,2011-01-05 23:59:00,bob,United Kingdom
1003,C,Cup,4,2.5,2011-01-06 09:00:00,,United Kingdom
C1004,A,Apple mug,-1,10.0,2011-01-06 11:00:00,alice,United Kingdom
"""
# Later lines: more of invoice 1001 on the same day (and one the next day), a line the first
# file already stored (skipped, so it adds nothing), a new day, a return, a line without a code.
SECOND = HEADER + """\
1001,K,Kettle,1,35.0,2011-01-05 10:05:00,alice,United Kingdom
1001,C,Cup,3,2.5,2011-01-06 00:01:00,alice,United Kingdom
1002,K,Kettle,1,35.0,2011-01-05 23:59:00,bob,United Kingdom
1005,A,Apple mug,1,10.0,2011-01-07 12:00:00,carol,France
1005,,,1,1.0,2011-01-07 12:00:00,carol,France
C1006,K,Kettle,-1,35.0,2011-01-07 13:00:00,bob,United Kingdom
1007,DOT,Dotcom postage,1,3.0,2011-01-07 14:00:00,,United Kingdom
"""
KEY = list(invoice_days.KEY)


def _file(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content)
    return path


def _staged(settings: Settings, path: Path) -> StagedFile:
    """The file read and checked as ingest does, ready for write_files."""
    raw = read_file(path, file_sha256(path))
    staged, _ = stage_lines(raw, choose_preset(raw, settings, None))
    return staged


def stored(engine: Engine) -> pd.DataFrame:
    frame = read_frame(engine, select(INVOICE_DAYS))
    return _normalised(frame)


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"day": str, "invoice": str, "customer_id": str, "is_return": bool,
                          "is_product": bool, "lines": int, "amount": float, "net": float,
                          "quantity": float})
    return frame.sort_values(KEY).reset_index(drop=True)[[*KEY, *invoice_days.SUMS]]


def expected(engine: Engine, codes: list[str]) -> pd.DataFrame:
    """The summary computed here from every stored line, in pandas (not the store's SQL)."""
    lines = load_lines(engine=engine)
    frame = pd.DataFrame({
        "day": lines["ts"].dt.strftime("%Y-%m-%d"),
        "invoice": lines["invoice"],
        "customer_id": lines["customer_id"].fillna(invoice_days.NO_CUSTOMER),
        "is_return": lines["is_return"],
        "is_product": ~lines["stock_code"].isin(codes),
        "amount": lines["amount"],
        "net": lines["amount"].where(~lines["is_return"], -lines["amount"].abs()),
        "quantity": lines["quantity"],
    })
    summed = (frame.groupby(KEY).agg(lines=("amount", "size"), amount=("amount", "sum"),
                                     net=("net", "sum"), quantity=("quantity", "sum"))
              .reset_index())
    return _normalised(summed)


def assert_summary_matches_lines(engine: Engine, codes: list[str]) -> None:
    pd.testing.assert_frame_equal(stored(engine), expected(engine, codes), check_exact=False,
                                  rtol=1e-9)
    with engine.connect() as connection:
        assert invoice_days.stored_codes(connection) == sorted(codes)


def test_lines_arriving_later_are_added_to_their_days(db: Engine, settings: Settings,
                                                      tmp_path: Path) -> None:
    codes = settings.ingest.non_product_codes
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    assert_summary_matches_lines(db, codes)
    first = stored(db)
    summary = ingest_file(db, settings, _file(tmp_path, "second.csv", SECOND))
    assert summary.duplicates == 1
    assert_summary_matches_lines(db, codes)
    after = stored(db).set_index(KEY)
    alice = ("2011-01-05", "1001", "alice", False, True)
    assert after.loc[alice, "lines"] == 2 and after.loc[alice, "amount"] == pytest.approx(55.0)
    assert after.loc[("2011-01-05", "1002", "bob", False, True), "lines"] == 1  # not doubled
    assert len(after) > len(first)


def test_the_customer_rows_give_the_lines_rfm(db: Engine, settings: Settings,
                                              tmp_path: Path) -> None:
    """RFM over the summary's customer rows (what a dashboard window reads) equals RFM over the
    lines, recency, invoices and net value included."""
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    ingest_file(db, settings, _file(tmp_path, "second.csv", SECOND))
    codes = settings.ingest.non_product_codes
    as_of = pd.Timestamp("2011-01-08").date()
    from_lines = rfm_segments(load_lines(engine=db, columns=REQUIRED_LINE_COLUMNS), as_of=as_of,
                              settings=settings.rfm, non_product_codes=codes)
    history = invoice_days.customer_history(engine=db, until=None)
    from_summary = rfm_segments(history, as_of=as_of, settings=settings.rfm,
                                non_product_codes=codes)
    pd.testing.assert_frame_equal(from_summary, from_lines)
    assert from_lines.set_index("customer_id").loc["alice", "frequency"] == 1
    # A window's customers: every row up to until of those with a row in [since, until].
    since, until = pd.Timestamp("2011-01-07").date(), pd.Timestamp("2011-01-07").date()
    active = invoice_days.customer_history(engine=db, until=until, active_since=since)
    assert set(active["customer_id"]) == {"bob", "carol"}
    expected = history[history["customer_id"].isin(["bob", "carol"])]
    # Invoices are integer codes per read (distinct texts, distinct codes), customer ids a
    # categorical of the read's own customers: compare the rest as text, and the distinct
    # invoices per customer.
    assert sorted(active["customer_id"].cat.categories) == ["bob", "carol"]
    order = ["customer_id", "ts", "amount"]
    pd.testing.assert_frame_equal(
        active.drop(columns="invoice").astype({"customer_id": str}).sort_values(order)
        .reset_index(drop=True),
        expected.drop(columns="invoice").astype({"customer_id": str}).sort_values(order)
        .reset_index(drop=True))
    invoices = {"bob": 2, "carol": 1}
    assert active.groupby("customer_id", observed=True)["invoice"].nunique().to_dict() == invoices
    assert (expected.groupby("customer_id", observed=True)["invoice"].nunique().to_dict()
            == invoices)


def test_a_load_that_rolls_back_leaves_the_summary_as_it_was(db: Engine, settings: Settings,
                                                             tmp_path: Path) -> None:
    """The second file's lines and their summary are written, then the load's transaction fails
    on the next file (its bytes were stored meanwhile by another process): neither stays."""
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    before = stored(db)
    second = _staged(settings, _file(tmp_path, "second.csv", SECOND))
    clash = _staged(settings, _file(tmp_path, "third.csv", FIRST.replace(
        "1001,A", "1008,A")))
    with db.begin() as connection:
        connection.execute(text(
            "INSERT INTO source_file (path, sha256, kind, loaded_at, lines_read, lines_loaded, "
            "duplicates, rejected) VALUES ('other.csv', :sha, 'transactions', "
            "'2011-01-01 00:00:00', 0, 0, 0, 0)"), {"sha": clash.sha256})
    with pytest.raises(StoreError, match="was loaded by another process"):
        write_files(engine=db, files=[second, clash],
                    non_product_codes=settings.ingest.non_product_codes)
    pd.testing.assert_frame_equal(stored(db), before)
    assert_summary_matches_lines(db, settings.ingest.non_product_codes)


def test_other_non_product_codes_rebuild_the_summary(db: Engine, settings: Settings,
                                                     tmp_path: Path) -> None:
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    assert invoice_days.codes_match(engine=db, codes=settings.ingest.non_product_codes)
    other = make_settings(tmp_path, settings.database_url,
                          '[ingest]\nnon_product_codes = ["POST", "C"]\n')
    assert not invoice_days.codes_match(engine=db, codes=other.ingest.non_product_codes)
    ingest_file(db, other, _file(tmp_path, "second.csv", SECOND))
    assert_summary_matches_lines(db, ["C", "POST"])
    assert invoice_days.codes_match(engine=db, codes=["POST", "C"])


def _migrate(engine: Engine, target: str, *, down: bool = False) -> None:
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, target)


def test_migration_0007_builds_the_summary_of_a_store_with_lines(db: Engine, settings: Settings,
                                                                 tmp_path: Path) -> None:
    """A store at 0006 holding lines, upgraded, has the summary a fresh load writes."""
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    ingest_file(db, settings, _file(tmp_path, "second.csv", SECOND))
    loaded = stored(db)
    _migrate(db, "0006", down=True)
    assert current_revision(engine=db) == "0006"
    with db.connect() as connection:
        tables: Any = db.dialect.get_table_names(connection)
    assert "invoice_day" not in tables and "summary_setting" not in tables
    _migrate(db, "0007")
    assert current_revision(engine=db) == "0007"
    pd.testing.assert_frame_equal(stored(db), loaded)
    assert_summary_matches_lines(db, settings.ingest.non_product_codes)
