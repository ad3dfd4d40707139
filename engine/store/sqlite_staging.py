"""SQLite bulk load of transaction lines: staged by the ADBC driver in a worker thread, copied by
the load's own transaction while the worker stages the next group.

The lines of the files are cut into at most MAX_GROUPS groups of rows. The worker copies each
group, column-wise from Arrow, into a scratch SQLite file of its own with the ADBC driver (which
binds each batch in C, with the GIL released). The load's transaction, on the store's sqlite3
connection, attaches a group's file as soon as it is complete and copies it into
transaction_line with INSERT OR IGNORE ... SELECT (sqlite3 releases the GIL too), so the two
copies overlap on two cores. The worker also runs other work handed to it with `submit` (the
product and customer rows of a file) while the transaction is busy inserting.

Two copies of SQLite in one process must never have the same file open (closing one copy's
handle drops the other's POSIX locks: https://sqlite.org/howtocorrupt.html, "multiple copies of
SQLite"). The ADBC driver carries its own copy, so it never opens the store: it opens each scratch
file once, and closes it before the store's connection attaches that file.

SQLite attaches inside a transaction but detaches only after it (a database the transaction has
read is locked), so every group stays attached to the end; SQLite attaches at most 10 databases,
hence the group limit.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection

from engine.columns import STAGED_LINE_COLUMNS
from engine.errors import first_line
from engine.store.db import StoreError
from engine.store.staged import ProgressCallback, StagedFile, timestamp_array

log = logging.getLogger(__name__)

MAX_GROUPS = 8
GROUP_TABLE = "lines"
Result = TypeVar("Result")


@dataclass(frozen=True)
class Group:
    """Rows [start, end) of file `file_index`'s lines, staged in `path`."""

    number: int
    file_index: int
    start: int
    end: int
    path: Path

    @property
    def schema(self) -> str:
        return f"staging_{self.number}"


def plan_groups(files: list[StagedFile], folder: Path, batch_size: int) -> list[Group]:
    """Groups of whole batches, as equal as that allows, at most MAX_GROUPS in all (a file with
    lines always has at least one group of its own)."""
    sizes = [0 if item.lines is None else len(item.lines) for item in files]
    with_lines = [index for index, size in enumerate(sizes) if size]
    if len(with_lines) > MAX_GROUPS:
        raise ValueError(f"one load stages at most {MAX_GROUPS} files with lines "
                         f"(SQLite attaches at most 10 databases), not {len(with_lines)}")
    slots = max(MAX_GROUPS - len(with_lines) + 1, 1)
    batches = -(-sum(sizes) // batch_size)
    group_size = batch_size * max(1, -(-batches // slots))
    groups: list[Group] = []
    for index in with_lines:
        for start in range(0, sizes[index], group_size):
            number = len(groups)
            groups.append(Group(number, index, start, min(start + group_size, sizes[index]),
                                folder / f"staging-{number}.db"))
    return groups


class SqliteStaging:
    """The worker thread and the groups of one load. Use as a context manager: leaving it stops
    the worker (work not started is cancelled, a group being copied is finished) before the
    scratch folder can be removed."""

    def __init__(self, folder: Path, files: list[StagedFile], batch_size: int) -> None:
        self.files = files
        self.batch_size = batch_size
        self.groups = plan_groups(files, folder, batch_size)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmint-staging")
        self._staged: list[Future[None]] = []

    def __enter__(self) -> SqliteStaging:
        """Starts the worker on the groups."""
        self._staged = [self._worker.submit(self._stage, group) for group in self.groups]
        return self

    def __exit__(self, *exc: object) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def submit(self, work: Callable[..., Result], *args: Any) -> Future[Result]:
        """Runs `work` in the worker after the staging queued so far."""
        return self._worker.submit(work, *args)

    def _stage(self, group: Group) -> None:
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        staged = self.files[group.file_index]
        assert staged.lines is not None
        with adbc_sqlite.connect(str(group.path), autocommit=True) as connection, \
                connection.cursor() as cursor:
            # A scratch file, deleted after the load whatever happens: nothing there to recover.
            for pragma in ("journal_mode=OFF", "synchronous=OFF"):
                cursor.execute(f"PRAGMA {pragma}")
                cursor.fetchall()
            cursor.execute("BEGIN")
            for start in range(group.start, group.end, self.batch_size):
                count = min(self.batch_size, group.end - start)
                batch = arrow_batch(staged.lines.iloc[start:start + count], {
                    name: array.slice(start, count) for name, array in staged.text_arrays.items()})
                cursor.adbc_ingest(GROUP_TABLE, batch,
                                   mode="create" if start == group.start else "append")
            cursor.execute("COMMIT")
        log.debug("copied lines %d..%d of file %d to %s", group.start, group.end,
                  group.file_index, group.path.name)

    def _wait_for(self, group: Group) -> None:
        """Returns once the worker has staged the group; raises its error. A failure to write the
        scratch file (a full or read-only temp folder) names the folder, not the store."""
        from adbc_driver_manager import Error as AdbcError

        try:
            self._staged[group.number].result()
        except (OSError, AdbcError) as exc:
            raise StoreError(f"staging the lines in the scratch folder {group.path.parent} "
                             f"failed: {first_line(exc)}") from exc

    def insert_lines(self, connection: Connection, file_index: int, source_id: int,
                     on_progress: ProgressCallback | None) -> int:
        """Copies the file's groups into transaction_line as each is ready, inside the
        connection's transaction; returns how many lines were new."""
        columns = ["source_file_id", *STAGED_LINE_COLUMNS]
        raw = connection.connection.driver_connection
        cursor = raw.cursor()  # type: ignore[union-attr]
        loaded = 0
        try:
            # A page cache sized to the table's indexes keeps the inserts into them in memory
            # (about 100 bytes of index per line; 256 MiB to 2 GiB).
            stored = cursor.execute("SELECT COALESCE(MAX(id), 0) FROM transaction_line") \
                .fetchone()[0]
            mine = [group for group in self.groups if group.file_index == file_index]
            adding = sum(group.end - group.start for group in mine)
            cache_kib = min(max(256 * 1024, (stored + adding) * 100 // 1024), 2 * 1024 * 1024)
            cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
            done = 0
            for group in mine:
                self._wait_for(group)
                cursor.execute(f"ATTACH DATABASE ? AS {group.schema}", (str(group.path),))
                statement = (f"INSERT OR IGNORE INTO transaction_line ({', '.join(columns)}) "
                             f"SELECT ?, {', '.join(STAGED_LINE_COLUMNS)} "
                             f"FROM {group.schema}.{GROUP_TABLE} "
                             "WHERE rowid BETWEEN ? AND ? ORDER BY rowid")
                rows = group.end - group.start
                for first in range(1, rows + 1, self.batch_size):
                    last = min(first + self.batch_size - 1, rows)
                    cursor.execute(statement, (source_id, first, last))
                    loaded += cursor.rowcount
                    done += last - first + 1
                    log.debug("inserted %d of %d lines", done, adding)
                    if on_progress:
                        on_progress(last - first + 1)
        finally:
            cursor.execute("PRAGMA cache_size=-2000")
            cursor.close()
        return loaded

    @contextlib.contextmanager
    def attachments(self, connection: Connection) -> Iterator[None]:
        """Wraps the load's transaction: afterwards (committed or rolled back) every group
        attached to the connection is detached again."""
        try:
            yield
        finally:
            raw = connection.connection.driver_connection
            try:
                attached = {row[1] for row in raw.execute("PRAGMA database_list")}  # type: ignore[union-attr]
                for group in self.groups:
                    if group.schema in attached:
                        raw.execute(f"DETACH DATABASE {group.schema}")  # type: ignore[union-attr]
            except sqlite3.Error:
                connection.invalidate()  # never hand a connection with a file attached back


def arrow_batch(frame: pd.DataFrame, text: dict[str, pa.ChunkedArray]) -> pa.RecordBatch:
    """The lines as transaction_line stores them: ts as SQLite DateTime text, is_return 0/1.
    text: columns of the frame already in Arrow (the same rows), taken as they are."""
    arrays: dict[str, pa.Array] = {}
    for name in STAGED_LINE_COLUMNS:
        values = frame[name]
        if name in text:
            arrays[name] = text[name].combine_chunks()
        elif name == "ts":
            arrays[name] = timestamp_array(values)
        elif name == "is_return":
            arrays[name] = pa.array(values.to_numpy().astype(np.int64))
        elif values.dtype == object:
            arrays[name] = pa.array(values.to_numpy(), type=pa.string(), from_pandas=True)
        else:
            arrays[name] = pa.array(values.to_numpy())
    return pa.RecordBatch.from_pydict(arrays)
