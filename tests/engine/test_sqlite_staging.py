"""The SQLite load's staging: groups of rows staged by a worker thread, attached and copied by the
load's transaction (engine.store.sqlite_staging), on real SQLite files."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from engine.ingest import PRESETS, ingest_file
from engine.ingest.readers import file_sha256, read_file
from engine.ingest.transactions import stage_lines
from engine.store import get_engine, init_db
from engine.store.customers import load_customers
from engine.store.db import StoreError
from engine.store.lines_read import load_lines
from engine.store.lines_write import write_files
from engine.store.sqlite_staging import MAX_GROUPS, plan_groups
from engine.store.staged import StagedFile
from tests.conftest import count_rows, make_settings
from tests.engine.test_ingest import GOOD_ROWS, write_csv

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def _staged(size: int) -> StagedFile:
    lines = None if size == 0 else pd.DataFrame({"line_no": range(size)})
    return StagedFile(path="f.csv", sha256="0" * 64, kind="transactions", lines_read=size,
                      duplicates=0, rejected=0, lines=lines)


def test_more_files_with_lines_than_groups_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 8 files"):
        plan_groups([_staged(5) for _ in range(MAX_GROUPS + 1)], Path("/scratch"), 10)


@hypothesis_settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 5_000), min_size=1, max_size=MAX_GROUPS),
       batch_size=st.integers(1, 700))
def test_groups_cover_every_line_once_within_the_attach_limit(sizes: list[int],
                                                              batch_size: int) -> None:
    groups = plan_groups([_staged(size) for size in sizes], Path("/scratch"), batch_size)
    assert len(groups) <= MAX_GROUPS
    assert len({group.path for group in groups}) == len(groups)
    for index, size in enumerate(sizes):
        mine = [group for group in groups if group.file_index == index]
        if size:
            assert (mine[0].start, mine[-1].end) == (0, size)
        else:
            assert mine == []
        assert all(a.end == b.start for a, b in zip(mine, mine[1:], strict=False))
        assert sum(group.end - group.start for group in mine) == size
        # Whole batches, but the last: the inserts step through a group batch by batch.
        assert all((group.end - group.start) % batch_size == 0 for group in mine[:-1])


def _sqlite(tmp_path: Path, name: str, config: str = "") -> tuple:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / name}", config)
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    return settings, engine


def _attached(engine) -> list[str]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return [row[1] for row in connection.exec_driver_sql("PRAGMA database_list")
                if row[1] != "temp"]


def test_many_small_groups_store_the_same_as_one(tmp_path: Path) -> None:
    rows = [f"5{i:05d},{20000 + i % 37},ITEM {i % 37},{1 + i % 5},2010-12-{1 + i % 28:02d} "
            f"10:{i % 60:02d}:00,{1 + i % 7}.25,{17000 + i % 23},United Kingdom"
            for i in range(700)]
    source = write_csv(tmp_path / "retail.csv", rows)
    one_settings, one = _sqlite(tmp_path, "one.db")
    many_settings, many = _sqlite(tmp_path, "many.db", "[ingest]\nbatch_size = 9\n")
    assert len(plan_groups([stage_lines(read_file(source), PRESETS["online-retail"])[0]],
                           tmp_path, 9)) == MAX_GROUPS

    first = ingest_file(one, one_settings, source)
    second = ingest_file(many, many_settings, source)
    assert (second.loaded, second.duplicates) == (first.loaded, first.duplicates) == (700, 0)
    pd.testing.assert_frame_equal(load_lines(engine=many), load_lines(engine=one))
    pd.testing.assert_frame_equal(load_customers(engine=many), load_customers(engine=one))
    assert count_rows(many) == count_rows(one)

    # A second file repeating lines from several groups: each is skipped once, not re-added.
    repeat = write_csv(tmp_path / "repeat.csv", rows[::50] + [GOOD_ROWS[0]])
    summary = ingest_file(many, many_settings, repeat)
    assert (summary.loaded, summary.duplicates) == (1, 14)
    assert count_rows(many)["transaction_line"] == 701
    # Nothing stays attached, and the per-row foreign key check is back on.
    assert _attached(many) == ["main"]
    with many.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def _store_and_file(tmp_path: Path, monkeypatch, name: str, count: int):  # type: ignore[no-untyped-def]
    """A SQLite store holding one small file, its row counts, the staged lines of another file
    of `count` lines, and an empty folder the load's scratch files go to."""
    settings, engine = _sqlite(tmp_path, "store.db")
    ingest_file(engine, settings, write_csv(tmp_path / "first.csv", GOOD_ROWS))
    rows = [f"6{i:05d},{30000 + i % 11},THING,2,2011-01-{1 + i % 28:02d} 09:00:00,1.5,"
            f"{18000 + i % 5},France" for i in range(count)]
    source = write_csv(tmp_path / name, rows)
    staged, _ = stage_lines(read_file(source, file_sha256(source)), PRESETS["online-retail"])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return engine, count_rows(engine), staged, scratch


def _assert_nothing_left(engine, before: dict[str, int], scratch: Path) -> None:  # type: ignore[no-untyped-def]
    assert count_rows(engine) == before
    assert not any(thread.name.startswith("segmint-staging") for thread in threading.enumerate())
    assert list(scratch.iterdir()) == []
    assert _attached(engine) == ["main"]


def test_failing_transaction_stops_the_worker_and_leaves_nothing(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """The load's transaction fails (another process stored the same file's bytes first) while
    the worker is staging: StoreError, nothing written, no worker thread or scratch file left,
    nothing attached."""
    engine, before, staged, scratch = _store_and_file(tmp_path, monkeypatch, "big.csv", 2_000)
    with engine.begin() as connection:  # the other process's row, same bytes
        connection.execute(text(
            "INSERT INTO source_file (path, sha256, kind, loaded_at, lines_read, lines_loaded, "
            "duplicates, rejected) VALUES ('other.csv', :sha, 'transactions', "
            "'2011-01-01 00:00:00', 0, 0, 0, 0)"), {"sha": staged.sha256})
    before["source_file"] += 1

    with pytest.raises(StoreError, match="big.csv: was loaded by another process"):
        write_files(engine=engine, files=[staged], batch_size=100)

    _assert_nothing_left(engine, before, scratch)
    # The store is still writable: the same file loads once the conflicting row is gone.
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM source_file WHERE path = 'other.csv'"))
    write_files(engine=engine, files=[staged], batch_size=100)
    assert staged.loaded == 2_000


def test_failing_worker_rolls_back_the_load_and_stops(tmp_path: Path, monkeypatch) -> None:
    """The worker cannot copy a group (a column Arrow cannot take): its error reaches the
    caller once the transaction gets to that group, and nothing of the file is stored."""
    engine, before, staged, scratch = _store_and_file(tmp_path, monkeypatch, "bad.csv", 1_000)
    line_no = staged.lines["line_no"].astype(object)
    line_no.iloc[900] = "nine hundred"  # in the last groups: the first ones are inserted
    staged.lines["line_no"] = line_no

    with pytest.raises(pa.ArrowTypeError):
        write_files(engine=engine, files=[staged], batch_size=100)

    _assert_nothing_left(engine, before, scratch)


def test_worker_that_cannot_write_its_scratch_file_names_the_folder(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """The worker cannot create a group's scratch file (here a folder stands where the file goes;
    in life a full or read-only temp folder): one line naming the scratch folder, not the store,
    and the load rolls back whole."""
    from engine.store import sqlite_staging

    engine, before, staged, scratch = _store_and_file(tmp_path, monkeypatch, "big.csv", 1_000)
    real_plan = sqlite_staging.plan_groups

    def plan_with_a_blocked_file(*args, **kwargs):  # type: ignore[no-untyped-def]
        groups = real_plan(*args, **kwargs)
        groups[-1].path.mkdir()
        return groups

    monkeypatch.setattr(sqlite_staging, "plan_groups", plan_with_a_blocked_file)
    with pytest.raises(StoreError, match=r"^staging the lines in the scratch folder "
                                         rf"{scratch}/segmint-load-\S+ failed: ") as caught:
        write_files(engine=engine, files=[staged], batch_size=100)

    assert "\n" not in str(caught.value)
    _assert_nothing_left(engine, before, scratch)
