"""Reads a query from a SQLite file into an Arrow IPC file, in a child process of its own.

The ADBC SQLite driver carries its own copy of the SQLite library. Two copies of SQLite must never
open the same database file in one process: closing a file in one copy drops the POSIX locks the
other copy holds on it, which can corrupt the database or give stale reads
(https://sqlite.org/howtocorrupt.html, "Multiple copies of SQLite linked into the same
application"). The rest of Segmint opens the store through Python's sqlite3, often from several
threads at once (scheduler jobs, dashboard workers), so the fast columnar read runs here, in a
process that opens nothing else, and hands its rows back as an Arrow file.

Usage (engine.store.lines_read does this): python -I sqlite_arrow.py URI SQL OUT
"""

from __future__ import annotations

import sys


def read_to_file(uri: str, sql: str, target: str) -> int:
    """Runs SQL on the database at URI and writes the rows to TARGET; returns how many.

    The driver manager's low-level API, not its DB-API module: that one imports pyarrow.dataset
    and pandas, about 0.5 s of start-up this short-lived process does not need.
    """
    import adbc_driver_manager
    import adbc_driver_sqlite
    import pyarrow as pa

    rows = 0
    with adbc_driver_manager.AdbcDatabase(driver=adbc_driver_sqlite._driver_path(),
                                          uri=uri) as database, \
            adbc_driver_manager.AdbcConnection(database) as connection, \
            adbc_driver_manager.AdbcStatement(connection) as statement:
        # The driver infers each column's type from the first batch; the query's casts fix them.
        statement.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
        statement.set_sql_query(sql)
        stream, _ = statement.execute_query()
        reader = pa.RecordBatchReader._import_from_c(stream.address)
        with pa.OSFile(target, "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def main(argv: list[str]) -> int:
    uri, sql, target = argv
    try:
        read_to_file(uri, sql, target)
    except Exception as exc:  # noqa: BLE001 - one line for the parent, whatever the driver raised
        message = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(f"{message}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
