"""The columnar copy of the lines (engine/store/columnar.py) gives a date window the rows the
store gives it (SQLite and PostgreSQL): after later lines, a load that rolls back, other
non-product codes and a store rebuilt under the same address; an incomplete copy is never read."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from engine.ingest import ingest_file
from engine.rfm import rfm_segments
from engine.settings import Settings
from engine.store import columnar, invoice_days
from engine.store.db import StoreError
from engine.store.lines_read import product_lines
from engine.store.lines_write import write_files
from engine.store.sales import window_products
from tests.conftest import make_settings
from tests.engine.store.test_invoice_days import FIRST, SECOND, _file, _staged

WINDOWS = [(None, None), (date(2011, 1, 6), date(2011, 1, 6)), (date(2011, 1, 5), None),
           (None, date(2011, 1, 5)), (date(2011, 1, 7), date(2011, 1, 7))]


def _copy(db: Engine, settings: Settings) -> columnar.ColumnarCopy:
    found = columnar.current_for(db, settings)
    assert found is not None, "the load did not leave a complete copy"
    return found


def _sorted_lines(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _rows(history: pd.DataFrame) -> pd.DataFrame:
    """A customer history's figures per day, customer and return flag: net value and distinct
    invoices (the invoice codes themselves are per read)."""
    return (history.groupby(["ts", "customer_id", "is_return"], observed=True)
            .agg(amount=("amount", "sum"), invoices=("invoice", "nunique")).reset_index())


def assert_copy_reads_as_the_store(db: Engine, settings: Settings) -> None:
    copy = _copy(db, settings)
    codes = settings.ingest.non_product_codes
    for since, until in WINDOWS:
        pd.testing.assert_frame_equal(
            _sorted_lines(columnar.product_lines(copy, non_product_codes=codes, since=since,
                                                 until=until)),
            _sorted_lines(product_lines(engine=db, non_product_codes=codes, since=since,
                                        until=until)))
        from_copy = columnar.customer_history(copy, until=until, active_since=since)
        from_store = invoice_days.customer_history(engine=db, until=until, active_since=since)
        assert list(from_copy.columns) == list(from_store.columns)
        assert from_copy.dtypes.equals(from_store.dtypes)
        pd.testing.assert_frame_equal(_rows(from_copy), _rows(from_store), check_exact=False,
                                      rtol=1e-12)
        as_of = (until or date(2011, 1, 7)) + pd.Timedelta(days=1)
        pd.testing.assert_frame_equal(
            rfm_segments(from_copy, as_of=as_of, settings=settings.rfm, non_product_codes=codes),
            rfm_segments(from_store, as_of=as_of, settings=settings.rfm, non_product_codes=codes))
        for ours, theirs in zip(window_products(engine=db, non_product_codes=codes, since=since,
                                                until=until, copy=copy),
                                window_products(engine=db, non_product_codes=codes, since=since,
                                                until=until), strict=True):
            ours, theirs = ours.astype({"stock_code": str}), theirs.astype({"stock_code": str})
            if "customer_id" in ours:
                ours = ours.astype({"customer_id": str}).sort_values(
                    ["customer_id", "stock_code"]).reset_index(drop=True)
                theirs = theirs.astype({"customer_id": str}).sort_values(
                    ["customer_id", "stock_code"]).reset_index(drop=True)
            pd.testing.assert_frame_equal(ours, theirs)


def test_later_lines_arrive_in_their_own_files_and_read_as_the_store(
        db: Engine, settings: Settings, tmp_path: Path) -> None:
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    assert len(_copy(db, settings).line_files) == 1
    assert_copy_reads_as_the_store(db, settings)
    # The second file adds to invoice 1001's day and repeats a stored line (skipped).
    ingest_file(db, settings, _file(tmp_path, "second.csv", SECOND))
    copy = _copy(db, settings)
    assert len(copy.line_files) == 2 and len(copy.day_files) == 2
    assert pq.read_metadata(copy.line_files[1]).num_rows == 6  # not the duplicate
    assert_copy_reads_as_the_store(db, settings)
    # A file already loaded changes nothing.
    ingest_file(db, settings, _file(tmp_path, "again.csv", SECOND))
    assert _copy(db, settings) == copy


def test_a_load_that_rolls_back_adds_nothing_to_the_copy(db: Engine, settings: Settings,
                                                         tmp_path: Path) -> None:
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    folder = columnar.settings_folder(settings)
    assert folder is not None
    before = sorted(path.name for path in folder.iterdir())
    second = _staged(settings, _file(tmp_path, "second.csv", SECOND))
    clash = _staged(settings, _file(tmp_path, "third.csv", FIRST.replace("1001,A", "1008,A")))
    with db.begin() as connection:
        connection.execute(text(
            "INSERT INTO source_file (path, sha256, kind, loaded_at, lines_read, lines_loaded, "
            "duplicates, rejected) VALUES ('other.csv', :sha, 'transactions', "
            "'2011-01-01 00:00:00', 0, 0, 0, 0)"), {"sha": clash.sha256})
    with pytest.raises(StoreError):
        write_files(engine=db, files=[second, clash],
                    non_product_codes=settings.ingest.non_product_codes)
    assert columnar.sync_for(db, settings) == _copy(db, settings)
    assert sorted(path.name for path in folder.iterdir()) == before
    assert_copy_reads_as_the_store(db, settings)


def test_an_incomplete_copy_is_not_read_until_synced(db: Engine, settings: Settings,
                                                     tmp_path: Path) -> None:
    """A load whose copy was not written (the process killed after its commit), or a file
    removed by hand: the readers get None (the store), and the next sync completes it."""
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    ingest_file(db, settings, _file(tmp_path, "second.csv", SECOND))
    copy = _copy(db, settings)
    copy.line_files[1].unlink()
    assert columnar.current_for(db, settings) is None
    assert columnar.sync_for(db, settings) == copy
    copy.day_files[0].unlink()
    assert columnar.current_for(db, settings) is None
    assert columnar.sync_for(db, settings) == copy
    assert_copy_reads_as_the_store(db, settings)


def test_other_non_product_codes_get_their_own_day_files(db: Engine, settings: Settings,
                                                         tmp_path: Path) -> None:
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    other = make_settings(tmp_path, settings.database_url,
                          '[ingest]\nnon_product_codes = ["POST", "C"]\n')
    assert columnar.current_for(db, other) is None
    ingest_file(db, other, _file(tmp_path, "second.csv", SECOND))  # rebuilds the summary too
    copy = _copy(db, other)
    assert all(columnar.codes_tag(["C", "POST"]) in path.name for path in copy.day_files)
    assert columnar.current_for(db, settings) is None  # the old codes' day files are gone
    assert_copy_reads_as_the_store(db, other)


def test_a_store_rebuilt_at_the_same_address_never_reads_the_old_copy(
        db: Engine, settings: Settings, tmp_path: Path) -> None:
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    old = _copy(db, settings)
    with db.begin() as connection:  # the store emptied and loaded again: ids start over
        for table in ("invoice_day", "transaction_line", "source_file"):
            connection.execute(text(f"DELETE FROM {table}"))
        if db.dialect.name == "postgresql":  # SQLite reuses the ids of deleted rows itself
            connection.execute(text("ALTER SEQUENCE source_file_id_seq RESTART WITH 1"))
    assert columnar.current_for(db, settings) is None
    ingest_file(db, settings, _file(tmp_path, "second.csv", SECOND))
    new = _copy(db, settings)
    assert new.line_files[0].name.split("-")[1] == old.line_files[0].name.split("-")[1] == "1"
    assert not old.line_files[0].exists()
    assert_copy_reads_as_the_store(db, settings)


def test_no_copy_when_the_setting_is_empty(db: Engine, settings: Settings,
                                           tmp_path: Path) -> None:
    bare = make_settings(tmp_path, settings.database_url,
                         '[dashboard]\ncolumnar_dir = ""\n')
    ingest_file(db, bare, _file(tmp_path, "first.csv", FIRST))
    assert columnar.settings_folder(bare) is None
    assert columnar.current_for(db, bare) is None
    assert not (tmp_path / "var" / "columnar").exists()


def test_an_unwritable_folder_is_one_warning_and_the_load_stands(
        db: Engine, settings: Settings, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the copy's folder should be")
    blocked = make_settings(tmp_path, settings.database_url,
                            f'[dashboard]\ncolumnar_dir = "{blocker}"\n')
    summary = ingest_file(db, blocked, _file(tmp_path, "first.csv", FIRST))
    assert summary.loaded == 5
    assert columnar.current_for(db, blocked) is None
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any("columnar copy not written" in message and str(blocker) in message
               for message in warnings)


def test_a_sync_leaves_the_files_of_a_load_it_did_not_list(db: Engine, settings: Settings,
                                                           tmp_path: Path) -> None:
    """Two loads at once: the first one's sync read the list of files before the second load
    committed, so the second one's pair is not in its list: it is left, not removed."""
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    ingest_file(db, settings, _file(tmp_path, "second.csv", SECOND))
    copy = _copy(db, settings)
    with db.begin() as connection:  # the sync below sees the store before the second load
        connection.execute(text("UPDATE source_file SET lines_loaded = 0 WHERE path LIKE "
                                "'%second.csv'"))
    columnar.sync_for(db, settings)
    assert all(path.exists() for path in (*copy.line_files, *copy.day_files))
    folder = columnar.settings_folder(settings)
    assert folder is not None
    leftover = folder / ".lines-9-0.parquet.123.tmp"
    leftover.write_bytes(b"half a file")
    os.utime(leftover, (0, 0))
    columnar.sync_for(db, settings)
    assert not leftover.exists()


@settings_hypothesis(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=1,
                                                                     max_codepoint=127),
                                             min_size=1, max_size=8)), min_size=1))
def test_invoice_keys_are_equal_exactly_when_the_texts_are(texts: list[str | None]) -> None:
    keys = columnar.invoice_keys(pa.array(texts, pa.string()))
    assert keys is not None
    assert [key is None for key in keys.to_pylist()] == [text is None for text in texts]
    pairs = {(text, key) for text, key in zip(texts, keys.to_pylist(), strict=True)
             if text is not None}
    assert len({text for text, _ in pairs}) == len({key for _, key in pairs}) == len(pairs)
    # Every file alike: the same text gets the same key in another array (another file).
    again = columnar.invoice_keys(pa.array(list(reversed(texts)), pa.string()))
    assert again is not None and again.to_pylist() == list(reversed(keys.to_pylist()))


def test_invoice_keys_refuse_texts_that_do_not_fit() -> None:
    for fits in ("536365", "C536379", "Rechnung"):
        assert columnar.invoice_keys(pa.array(["1001", fits])) is not None, fits
    for too_long_or_not_ascii_or_zero in ("123456789", "é", "a\x00"):
        assert columnar.invoice_keys(pa.array(["1001", too_long_or_not_ascii_or_zero])) is None


def test_invoices_without_keys_read_as_the_store(db: Engine, settings: Settings,
                                                 tmp_path: Path) -> None:
    """A file whose invoices do not all fit a key (here the second's, longer than 8 bytes):
    its day file says so, and every window reads the invoice texts, of every file."""
    ingest_file(db, settings, _file(tmp_path, "first.csv", FIRST))
    ingest_file(db, settings, _file(tmp_path, "second.csv",
                                    SECOND.replace("1005,", "INVOICE-1005,")))
    copy = _copy(db, settings)
    packed = [pq.read_schema(path).metadata.get(columnar.KEYS_META) for path in copy.day_files]
    assert packed == [b"packed", b""]
    assert_copy_reads_as_the_store(db, settings)
