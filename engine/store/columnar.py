"""A columnar copy of the lines for the dashboard's date windows: Parquet files beside the store.

A window on Segments or Products reads a million rows (the window customers' history from the
invoice_day summary, the window's product lines). From the store that read costs seconds at
10 M lines; from Parquet files sorted by time it costs a fraction of one, and the rows arrive
already column-wise (docs/benchmarks.md, "Dashboard at 10 M lines").

The copy is derived data, never the record. It is one pair of files per loaded source file:

- `lines-<file id>-<sha256>.parquet`: the file's stored lines (ts, invoice, customer_id,
  stock_code, quantity, amount, is_return), ordered by time;
- `days-<file id>-<sha256>-<codes>-<format>.parquet`: the same lines' customer rows summed as
  the invoice_day summary sums them (engine.store.invoice_days), for the non-product codes
  whose hash is in the name, each row's invoice also as one integer (`invoice_keys`), so a
  window's reader tells invoices apart without hashing a million invoice strings.

Why it stays correct: the lines are never updated or deleted, and every line belongs to the one
source file whose load inserted it, in one transaction (engine.store.lines_write). So a
committed source file's lines never change, a load that rolled back has no source file to copy,
lines arriving later come in a new source file (a new pair), and a store rebuilt from scratch
reuses ids with other sha256 values (their pairs no longer match and are removed). A window's
figures are sums, distinct counts and extremes over rows, so a (day, invoice, customer) spread
over two files' rows gives the same figures as the summary's one row. Files are written under
a temporary name and renamed, so a reader never sees half a file, and two writers of the same
file write the same bytes.

`sync` (after each load, and in the dashboard's background warm-up) writes what is missing;
`current` gives a reader the copy only when it holds every loaded file, so until the copy
has caught up the dashboard reads the store as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from engine.dates import window_end
from engine.store.db import StoreError, database_error
from engine.store.tables import SOURCE_FILES

if TYPE_CHECKING:
    from engine.settings import Settings

log = logging.getLogger(__name__)

LINE_COLUMNS = ("ts", "invoice", "customer_id", "stock_code", "quantity", "amount", "is_return")
LINE_SCHEMA = pa.schema([("ts", pa.timestamp("us")), ("invoice", pa.string()),
                         ("customer_id", pa.string()), ("stock_code", pa.string()),
                         ("quantity", pa.float64()), ("amount", pa.float64()),
                         ("is_return", pa.bool_())])
DAY_SCHEMA = pa.schema([("day", pa.timestamp("us")), ("invoice", pa.string()),
                        ("customer_id", pa.string()), ("is_return", pa.bool_()),
                        ("net", pa.float64()), ("invoice_key", pa.int64())])
DAY_FORMAT = "k1"  # in the day files' names: bumped when DAY_SCHEMA changes (old files go)
KEYS_META = b"segmint.invoice_keys"  # b"packed": every invoice_key is its invoice's
KEY_BYTES = 8
ROW_GROUP = 262_144  # rows per Parquet row group: a window skips the groups outside its days


@dataclass(frozen=True)
class ColumnarCopy:
    """The copy's files for the store's loaded source files, complete."""

    line_files: tuple[Path, ...]
    day_files: tuple[Path, ...]


def codes_tag(codes: Sequence[str]) -> str:
    """The non-product codes in a file name (a hash of the sorted, distinct codes)."""
    text = "\n".join(sorted(set(codes)))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def folder_for(root: Path, database_url: str) -> Path:
    """The copy's folder under root for one store (two stores never share files)."""
    return root / hashlib.sha256(database_url.encode()).hexdigest()[:16]


def _loaded_files(engine: Engine) -> list[tuple[int, str]]:
    """(id, sha256) of every committed source file with stored lines."""
    statement = (select(SOURCE_FILES.c.id, SOURCE_FILES.c.sha256)
                 .where(SOURCE_FILES.c.lines_loaded > 0, SOURCE_FILES.c.kind == "transactions")
                 .order_by(SOURCE_FILES.c.id))
    try:
        with engine.connect() as connection:
            return [(int(file_id), str(sha)) for file_id, sha in connection.execute(statement)]
    except SQLAlchemyError as exc:
        raise database_error(engine, exc) from None


def _names(file_id: int, sha256: str, tag: str) -> tuple[str, str]:
    stem = f"{file_id}-{sha256[:16]}"
    return f"lines-{stem}.parquet", f"days-{stem}-{tag}-{DAY_FORMAT}.parquet"


def current(engine: Engine, folder: Path, codes: Sequence[str]) -> ColumnarCopy | None:
    """The copy when it holds both files of every loaded source file, else None (read the store).
    Writes nothing."""
    files = _loaded_files(engine)
    tag = codes_tag(codes)
    names = [_names(file_id, sha, tag) for file_id, sha in files]
    try:
        present = {entry.name for entry in os.scandir(folder)}
    except OSError:
        return None
    if not files or any(a not in present or b not in present for a, b in names):
        return None
    return ColumnarCopy(tuple(folder / a for a, _ in names), tuple(folder / b for _, b in names))


def sync(engine: Engine, folder: Path, codes: Sequence[str]) -> ColumnarCopy:
    """Write the files the copy lacks (a source file's lines read once from the store) and
    remove those of source files the store no longer has; return the complete copy. StoreError
    when the store or the folder refuses."""
    files = _loaded_files(engine)
    tag = codes_tag(codes)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        wanted: set[str] = set()
        for file_id, sha in files:
            lines_name, days_name = _names(file_id, sha, tag)
            wanted.update((lines_name, days_name))
            lines_path, days_path = folder / lines_name, folder / days_name
            if not lines_path.exists():
                table = _source_file_lines(engine, file_id)
                _write(table, lines_path)
                log.info("columnar copy: source file %d, %s lines written", file_id,
                         f"{table.num_rows:,}")
            if not days_path.exists():
                _write(customer_days(pq.read_table(lines_path), codes), days_path)
        listed = {file_id for file_id, _ in files}
        for entry in os.scandir(folder):
            if _stale(entry, listed, wanted):
                Path(entry.path).unlink(missing_ok=True)
    except OSError as exc:
        raise StoreError(f"{folder}: columnar copy not written: {exc}") from None
    found = current(engine, folder, codes)
    if found is None:  # another process removed files meanwhile (a store rebuilt under us)
        raise StoreError(f"{folder}: columnar copy incomplete after sync; run it again")
    return found


def _stale(entry: os.DirEntry[str], listed: set[int], wanted: set[str]) -> bool:
    """A file of a source file id the store lists with other bytes or other codes (a store
    rebuilt, codes changed), or a temporary file a killed writer left over an hour ago. A file
    of an id not listed is left: a load that committed after the list was read wrote it."""
    if entry.name.startswith("."):
        return entry.name.endswith(".tmp") and time.time() - entry.stat().st_mtime > 3600
    parts = entry.name.split("-")
    if len(parts) < 3 or not parts[1].isdigit() or not entry.name.endswith(".parquet"):
        return False
    return int(parts[1]) in listed and entry.name not in wanted


def _write(table: pa.Table, target: Path) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary, row_group_size=ROW_GROUP)
    os.replace(temporary, target)


def _source_file_lines(engine: Engine, file_id: int) -> pa.Table:
    """One source file's stored lines, ordered by time, as LINE_SCHEMA."""
    from engine.store.lines_read import empty_as_null, read_source_file

    table = read_source_file(engine, file_id, list(LINE_COLUMNS))
    columns = {"ts": pc.cast(table.column("ts"), pa.timestamp("us"))}  # as lines_read does
    for name in ("invoice", "customer_id", "stock_code"):
        columns[name] = empty_as_null(table.column(name))
    columns |= {"quantity": table.column("quantity"), "amount": table.column("amount"),
                "is_return": pc.not_equal(table.column("is_return"), 0)}
    lines = pa.table(columns, schema=LINE_SCHEMA)
    return lines.take(pc.sort_indices(lines, sort_keys=[("ts", "ascending")]))


def customer_days(lines: pa.Table, codes: Sequence[str]) -> pa.Table:
    """The lines' customer rows of product lines summed per UTC day, invoice, customer and
    return flag (net: a return's value always subtracts), as DAY_SCHEMA, ordered by day."""
    customer = lines.column("customer_id")
    code = lines.column("stock_code")
    is_product = pc.or_kleene(pc.is_null(code), pc.invert(pc.is_in(
        code, value_set=pa.array(sorted(set(codes)), pa.string()))))
    kept = lines.filter(pc.and_(pc.is_valid(customer), is_product))
    amount = kept.column("amount")
    net = pc.if_else(kept.column("is_return"), pc.negate(pc.abs(amount)), amount)
    rows = pa.table({"day": pc.floor_temporal(kept.column("ts"), unit="day"),
                     "invoice": kept.column("invoice"), "customer_id": kept.column("customer_id"),
                     "is_return": kept.column("is_return"), "net": net})
    summed = rows.group_by(["day", "invoice", "customer_id", "is_return"],
                           use_threads=False).aggregate([("net", "sum")])
    summed = summed.rename_columns([name.removesuffix("_sum") for name in summed.column_names])
    keys = invoice_keys(summed.column("invoice").combine_chunks())
    summed = summed.append_column("invoice_key", keys if keys is not None else
                                  pa.nulls(summed.num_rows, pa.int64()))
    summed = summed.select(DAY_SCHEMA.names).cast(DAY_SCHEMA)
    summed = summed.replace_schema_metadata({KEYS_META: b"packed" if keys is not None else b""})
    return summed.take(pc.sort_indices(summed, sort_keys=[("day", "ascending")]))


def invoice_keys(invoice: pa.Array) -> pa.Array | None:
    """Each invoice text as one int64: its bytes, padded with zero bytes to KEY_BYTES, read as a
    big-endian number (null where the invoice is null). Two texts get the same key only if they
    are the same text, so the keys tell invoices apart exactly, in every file alike. None when
    some text does not fit: longer than KEY_BYTES, not ASCII, or holding a zero byte (then the
    readers use the text)."""
    valid = invoice.drop_null()
    if len(valid) and not (pc.all(pc.string_is_ascii(valid)).as_py()
                           and pc.max(pc.binary_length(valid)).as_py() <= KEY_BYTES
                           and not pc.any(pc.match_substring(valid, "\x00")).as_py()):
        return None
    padded = pc.fill_null(pc.utf8_rpad(invoice, width=KEY_BYTES, padding="\x00"),
                          "\x00" * KEY_BYTES)
    _, offsets, data = padded.buffers()  # every text now KEY_BYTES long, one after the other
    start = int(np.frombuffer(offsets, dtype=np.int32)[padded.offset])
    keys = np.frombuffer(data, dtype=">i8", count=len(padded), offset=start).astype(np.int64)
    return pa.array(keys, mask=invoice.is_null().to_numpy(zero_copy_only=False))


# --- readers ----------------------------------------------------------------------------------

def _moment(day: date) -> pa.Scalar:
    return pa.scalar(datetime(day.year, day.month, day.day), pa.timestamp("us"))


def customer_history(copy: ColumnarCopy, *, until: date | None,
                     active_since: date | None = None) -> pd.DataFrame:
    """engine.store.invoice_days.customer_history, read from the copy (same rows, a key spread
    over two source files in two rows)."""
    from engine.store.invoice_days import as_pseudo_lines

    # Customer ids read on the files' dictionary pages, unified into one dictionary: the
    # window's customers are picked on the codes, and as_pseudo_lines keeps them (no hashing of
    # a million id strings).
    days = ds.dataset(list(map(str, copy.day_files)), schema=DAY_SCHEMA.set(
        DAY_SCHEMA.get_field_index("customer_id"),
        pa.field("customer_id", pa.dictionary(pa.int32(), pa.string()))),
        format=ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(
            dictionary_columns={"customer_id"})))
    end = window_end(until)
    condition = ds.field("day") < _moment(end) if end is not None else None
    packed = all((pq.read_schema(path).metadata or {}).get(KEYS_META) == b"packed"
                 for path in copy.day_files)
    table = days.to_table(columns=["day", "invoice_key" if packed else "invoice", "customer_id",
                                   "is_return", "net"], filter=condition).unify_dictionaries()
    customer = table.column("customer_id").combine_chunks()
    if active_since is not None:
        codes = customer.indices.to_numpy()
        recent = pc.greater_equal(table.column("day"), _moment(active_since)).combine_chunks(
        ).to_numpy(zero_copy_only=False)  # (numpy's datetime comparison took 25 times longer)
        active = np.zeros(len(customer.dictionary), dtype=bool)
        active[codes[recent]] = True
        keep = pa.array(active[codes])
        table, customer = table.filter(keep), customer.filter(keep)
    return as_pseudo_lines(table.column(1), customer, table.column("is_return"),
                           table.column("net"), table.column("day"))


def product_lines(copy: ColumnarCopy, *, non_product_codes: Sequence[str],
                  since: date | None = None, until: date | None = None,
                  coded: bool = False) -> pa.Table:
    """engine.store.lines_read.product_lines, read from the copy. coded: customer ids and stock
    codes as dictionary arrays (one dictionary per column), read from the files' own dictionary
    pages instead of as a million strings to hash again (a 4-month window at 10 M lines: 0.23-0.30
    s -> 0.10-0.15 s)."""
    schema = LINE_SCHEMA
    if coded:  # as dictionary arrays (with the plain schema Arrow decodes them to strings)
        for name in ("customer_id", "stock_code"):
            schema = schema.set(schema.get_field_index(name),
                                pa.field(name, pa.dictionary(pa.int32(), pa.string())))
    lines = ds.dataset(list(map(str, copy.line_files)), schema=schema, format=(
        ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(
            dictionary_columns={"customer_id", "stock_code"})) if coded else "parquet"))
    condition = ds.field("stock_code").is_valid()
    if non_product_codes:
        condition &= ~ds.field("stock_code").isin(sorted(set(non_product_codes)))
    if since is not None:
        condition &= ds.field("ts") >= _moment(since)
    end = window_end(until)
    if end is not None:
        condition &= ds.field("ts") < _moment(end)
    table = lines.to_table(columns=["customer_id", "stock_code", "quantity", "amount",
                                    "is_return"], filter=condition)
    return table.unify_dictionaries() if coded else table


# --- with the settings ------------------------------------------------------------------------

def settings_folder(settings: Settings) -> Path | None:
    """The store's copy folder from [dashboard] columnar_dir (None: no copy kept, or a store in
    memory, which no other process can read)."""
    if not settings.dashboard.columnar_dir or ":memory:" in settings.database_url:
        return None
    return folder_for(settings.path(settings.dashboard.columnar_dir), settings.database_url)


def current_for(engine: Engine, settings: Settings) -> ColumnarCopy | None:
    folder = settings_folder(settings)
    if folder is None:
        return None
    return current(engine, folder, settings.ingest.non_product_codes)


def sync_for(engine: Engine, settings: Settings) -> ColumnarCopy | None:
    """sync with the settings' folder and codes; a copy that cannot be written is logged (the
    dashboard then reads the store), never an error of the load that called it."""
    folder = settings_folder(settings)
    if folder is None:
        return None
    try:
        return sync(engine, folder, settings.ingest.non_product_codes)
    except StoreError as exc:
        log.warning("%s", exc)
        return None
