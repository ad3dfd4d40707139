"""Ingest: a transactions file (and optionally a customers file) into the store, all or nothing.

Reading, checking and normalising happen in memory first; only a file that can be loaded reaches
the database, in one transaction (engine.store.lines_write.write_files). Rows that cannot be used
are written to a rejects report with their line number and reason; they never fail the file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from engine.columns import STAGED_LINE_COLUMNS
from engine.customers_file import stage_customers
from engine.readers import (
    IngestError,
    RawFile,
    file_format,
    file_sha256,
    read_file,
    text_cells_arrow,
    whole_number_ids,
)
from engine.settings import IngestMapping, Settings
from engine.store.lines_write import find_loaded_file, write_files
from engine.store.staged import StagedFile
from engine.store.tables import LINES

__all__ = ["IngestError", "IngestSummary", "PRESETS", "ingest_file"]

log = logging.getLogger(__name__)

FIELDS = ["invoice", "stock_code", "description", "quantity", "unit_price", "amount", "timestamp",
          "customer_id", "country"]


@dataclass(frozen=True)
class Preset:
    name: str
    columns: dict[str, str]  # field -> source column
    timestamp_formats: tuple[str, ...]
    required: tuple[str, ...]


PRESETS: dict[str, Preset] = {
    "online-retail": Preset(
        "online-retail",
        {"invoice": "InvoiceNo", "stock_code": "StockCode", "description": "Description",
         "quantity": "Quantity", "timestamp": "InvoiceDate", "unit_price": "UnitPrice",
         "customer_id": "CustomerID", "country": "Country"},
        # The published CSV writes ISO timestamps; the original spreadsheet export m/d/Y H:M.
        ("%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M", "ISO8601"),
        ("invoice", "stock_code", "description", "quantity", "timestamp", "unit_price",
         "customer_id", "country"),
    ),
    "online-retail-ii": Preset(
        "online-retail-ii",
        {"invoice": "Invoice", "stock_code": "StockCode", "description": "Description",
         "quantity": "Quantity", "timestamp": "InvoiceDate", "unit_price": "Price",
         "customer_id": "Customer ID", "country": "Country"},
        ("%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M", "ISO8601"),
        ("invoice", "stock_code", "description", "quantity", "timestamp", "unit_price",
         "customer_id", "country"),
    ),
}


def generic_preset(mapping: IngestMapping) -> Preset:
    columns = {name: getattr(mapping, name) for name in FIELDS if getattr(mapping, name)}
    return Preset("generic", columns, (mapping.timestamp_format, "ISO8601"),
                  ("customer_id", "timestamp"))


@dataclass(frozen=True)
class IngestSummary:
    """What one file did. For a customers file, `flagged` rows were loaded but also reported
    (invalid phone, bad sign-up date, ...); `rejected` counts every reported row."""

    path: str
    lines_read: int
    loaded: int
    duplicates: int
    rejected: int
    rejects_path: str | None
    already_loaded: bool
    kind: str = "transactions"
    preset: str | None = None
    flagged: int = 0
    customers: IngestSummary | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary_line(self) -> str:
        if self.already_loaded:
            return f"{self.path}: already loaded (same sha256), nothing added"
        text = (f"{self.path}: read {self.lines_read:,}, loaded {self.loaded:,}, "
                f"duplicates skipped {self.duplicates:,}, rejected {self.rejected:,}")
        if self.flagged:
            text += f" ({self.flagged:,} of them kept with the bad field emptied or flagged)"
        if self.rejects_path:
            text += f"; rejects report: {self.rejects_path}"
        return text


def ingest_file(engine: Engine, settings: Settings, path: str | Path, *, preset: str | None = None,
                customers: str | Path | None = None, progress: bool = False) -> IngestSummary:
    """Load a transactions file (CSV, CSV.gz, XLSX, Parquet) and optionally a customers file.

    Idempotent: a file whose bytes were loaded before adds nothing, and a line already stored (by
    its hash) is counted as a duplicate. Both files are written in one transaction; IngestError
    (or StoreError) leaves the database exactly as it was.
    """
    transactions_path = Path(path)
    staged: list[StagedFile] = []
    reports: list[tuple[StagedFile, pd.DataFrame]] = []

    sha256 = file_sha256(transactions_path)
    file_format(transactions_path)
    earlier = find_loaded_file(engine=engine, sha256=sha256)
    chosen: Preset | None = None
    if earlier is None:
        raw = read_file(transactions_path, sha256)
        chosen = choose_preset(raw, settings, preset)
        lines_file, rejects = stage_lines(raw, chosen)
        del raw  # the text frame is not needed while writing
        if lines_file.lines_read and lines_file.rejected == lines_file.lines_read:
            # Nothing usable at all is a wrong layout or format setting, not a few bad rows.
            first = rejects.iloc[0]
            raise IngestError(
                f"{transactions_path}: every one of {lines_file.lines_read:,} lines was rejected "
                f"(line {first['line']}: {first['reason']}); nothing loaded: check the preset "
                "and [ingest.mapping] timestamp_format")
        staged.append(lines_file)
        reports.append((lines_file, rejects))
    else:
        log.debug("%s: same bytes as %s loaded at %s; skipping", transactions_path, earlier.path,
                 earlier.loaded_at)

    customers_file: StagedFile | None = None
    customers_earlier = False
    flagged = 0
    if customers is not None:
        customers_sha256 = file_sha256(Path(customers))
        if find_loaded_file(engine=engine, sha256=customers_sha256) is None:
            raw_customers = read_file(Path(customers), customers_sha256)
            customers_file, customer_rejects, flagged = stage_customers(
                raw_customers, default_region=settings.notifications.default_region)
            staged.append(customers_file)
            reports.append((customers_file, customer_rejects))
        else:
            customers_earlier = True

    if staged:
        total = sum(len(item.lines) for item in staged if item.lines is not None)
        _write_with_progress(engine, staged, settings.ingest.batch_size, total, progress)
    report_paths = {id(item): _write_report(settings, item, rejects) for item, rejects in reports}

    customer_summary: IngestSummary | None = None
    if customers is not None:
        customer_summary = _summary(customers_file, str(customers), report_paths,
                                    already=customers_earlier, kind="customers", flagged=flagged)
    staged_lines = staged[0] if staged and staged[0].kind == "transactions" else None
    summary = _summary(staged_lines, str(transactions_path), report_paths,
                       already=earlier is not None, kind="transactions",
                       preset=chosen.name if chosen else None, customers=customer_summary)
    log.debug("%s", summary.summary_line())  # callers print or log it
    return summary


def _summary(staged: StagedFile | None, path: str, report_paths: dict[int, str | None], *,
             already: bool, kind: str, preset: str | None = None, flagged: int = 0,
             customers: IngestSummary | None = None) -> IngestSummary:
    if staged is None:
        return IngestSummary(path=path, lines_read=0, loaded=0, duplicates=0, rejected=0,
                             rejects_path=None, already_loaded=already, kind=kind,
                             customers=customers)
    notes: tuple[str, ...] = ()
    if staged.lines is not None and staged.lines["stock_code"].isna().all() and len(staged.lines):
        notes = ("no stock codes: product figures, basket rules and recommendations are skipped",)
    return IngestSummary(
        path=path, lines_read=staged.lines_read, loaded=staged.loaded,
        duplicates=staged.duplicates + staged.duplicates_in_db, rejected=staged.rejected,
        rejects_path=report_paths.get(id(staged)), already_loaded=False, kind=kind,
        preset=preset, flagged=flagged, customers=customers, notes=notes,
    )


def _write_with_progress(engine: Engine, staged: list[StagedFile], batch_size: int, total: int,
                         progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=total, unit="line", unit_scale=True, disable=not progress or total == 0,
              desc="loading", leave=False) as bar:
        write_files(engine=engine, files=staged, batch_size=batch_size, on_progress=bar.update)


def _write_report(settings: Settings, staged: StagedFile, rejects: pd.DataFrame) -> str | None:
    if rejects.empty:
        return None
    folder = settings.path(settings.ingest.rejects_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{Path(staged.path).name}.{staged.sha256[:12]}.rejects.csv"
    rejects.to_csv(target, index=False)
    return str(target)


# ---------------------------------------------------------------------------------------------
# Transactions


def choose_preset(raw: RawFile, settings: Settings, name: str | None) -> Preset:
    """The named preset, or (name None) the configured default if the columns fit, else the first
    preset whose columns are all present. Raise IngestError naming the missing columns."""
    candidates = {**PRESETS, "generic": generic_preset(settings.ingest.mapping)}
    if name is not None:
        if name not in candidates:
            raise IngestError(f"{raw.path}: unknown preset {name!r} "
                              f"(choose from {', '.join(candidates)})")
        preset = candidates[name]
        _check_columns(raw, preset)
        return preset
    default = settings.ingest.default_preset
    order = [default, *[key for key in candidates if key != default]]
    for key in order:
        if not _missing_columns(raw, candidates[key]):
            if key != default:
                log.info("%s: columns match the %s preset", raw.path, key)
            return candidates[key]
    _check_columns(raw, candidates[default])
    raise AssertionError("unreachable")


def _missing_columns(raw: RawFile, preset: Preset) -> list[str]:
    present = set(raw.frame.columns)
    missing = [preset.columns.get(name, f"<{name}: not mapped>") for name in preset.required
               if preset.columns.get(name) not in present]
    if preset.name == "generic":
        has_amount = preset.columns.get("amount") in present
        has_pair = all(preset.columns.get(name) in present for name in ("quantity", "unit_price"))
        if not (has_amount or has_pair):
            wanted = [preset.columns.get(name, f"<{name}: not mapped>")
                      for name in ("amount", "quantity", "unit_price")]
            missing.append(f"{wanted[0]} (or {wanted[1]} + {wanted[2]})")
    return missing


def _check_columns(raw: RawFile, preset: Preset) -> None:
    missing = _missing_columns(raw, preset)
    if missing:
        found = ", ".join(map(str, raw.frame.columns[:12])) or "none"
        raise IngestError(f"{raw.path}: missing column(s) {', '.join(missing)} for preset "
                          f"{preset.name} (found: {found})")


def _parse_timestamps(values: pd.Series, text: pd.Series, formats: tuple[str, ...],
                      given: np.ndarray) -> pd.Series:
    """values parsed (text: their text_cells; given: where text is not None) with the first
    format that fits each."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
    else:
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
        for fmt in formats:
            todo = parsed.isna() & given
            if not todo.any():
                break
            parsed[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce", utc=True)
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _number(values: pd.Series, text: pd.Series, array: pa.ChunkedArray | None = None
            ) -> pd.Series:
    """float64 of a source column (from text, its text_cells, or array, the same cells in Arrow,
    unless it is numeric already); NaN where there is no finite number."""
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    else:
        try:  # Arrow parses a clean column in C; one unparsable cell sends it to pandas
            if array is None:
                array = pa.array(text.to_numpy(), type=pa.string(), from_pandas=True)
            parsed = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
            numbers = pd.Series(parsed + 0.0, index=values.index)  # -0.0 -> 0.0, as pandas
        except pa.ArrowInvalid:
            numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers))


def _affix_mask(cells: pd.Series, array: pa.ChunkedArray | None, test: Callable[..., Any],
                affix: str) -> np.ndarray:
    """test (pc.starts_with or pc.ends_with) of each text cell with affix, False for None, as
    numpy bools; array: the same cells in Arrow if at hand, else cells are converted."""
    if array is None:
        array = pa.array(cells.to_numpy(), type=pa.string(), from_pandas=True)
    return pc.fill_null(test(array, affix), False).to_numpy(zero_copy_only=False)


def _longer_than(cells: pd.Series, array: pa.ChunkedArray | None, width: int) -> np.ndarray:
    """Text cells of more than WIDTH characters, as numpy bools (False for None); array: the
    same cells in Arrow if at hand, else cells are converted."""
    if array is None:
        array = pa.array(cells.to_numpy(), type=pa.string(), from_pandas=True)
    return pc.fill_null(pc.greater(pc.utf8_length(array), width), False).to_numpy(
        zero_copy_only=False)


Reason = tuple[np.ndarray, str, pd.Series | None]  # (mask, message, value quoted after it)


TEXT_FIELDS = ("invoice", "stock_code", "description", "customer_id", "country")
# The stored width of each bounded text field (engine.models: VARCHAR(n)). A longer value makes
# its line a rejected line here, so SQLite (which would keep it) and PostgreSQL (which would
# refuse the whole file) load the same lines.
FIELD_WIDTHS: dict[str, int] = {
    name: getattr(LINES.c[name].type, "length", 0) for name in TEXT_FIELDS
    if getattr(LINES.c[name].type, "length", None)}


def _normalise(raw: RawFile, preset: Preset
               ) -> tuple[pd.DataFrame, pd.Series, dict[str, pa.ChunkedArray]]:
    """(lines frame with line_no, reject reason per row or None; vectorised, no row loop), plus
    the text columns of the lines frame that Arrow holds as well (the same cells, row for row),
    for the store to copy without converting Python strings back."""
    frame = raw.frame
    present = {name: column for name, column in preset.columns.items() if column in frame.columns}
    source = {name: frame[column] for name, column in present.items()}
    texts: dict[str, pd.Series] = {}
    arrows: dict[str, pa.ChunkedArray] = {}
    missing: dict[str, np.ndarray] = {}
    for name, values in source.items():
        texts[name], array = text_cells_arrow(values)
        if array is None:
            missing[name] = texts[name].isna().to_numpy()
        else:
            arrows[name] = array
            missing[name] = _null_mask(array)
    empty = pd.Series(None, index=frame.index, dtype=object)
    out = pd.DataFrame(index=frame.index)
    for name in TEXT_FIELDS:
        out[name] = texts.get(name, empty)
    ids = out["customer_id"]
    fixed = whole_number_ids(ids, arrows.get("customer_id"))
    if fixed is not ids:
        arrows.pop("customer_id", None)  # rewritten: Arrow no longer holds the same cells
        out["customer_id"] = fixed
    out["ts"] = _parse_timestamps(source["timestamp"], texts["timestamp"],
                                  preset.timestamp_formats, ~missing["timestamp"])

    reasons: list[Reason] = []
    reasons.append((np.logical_and.reduce(list(missing.values())), "empty line", None))
    if "invoice" in source:
        reasons.append((out["invoice"].isna().to_numpy(), "missing invoice", None))
    bad_ts = out["ts"].isna().to_numpy()
    reasons.append((missing["timestamp"] & bad_ts, "missing timestamp", None))
    reasons.append((bad_ts, "bad timestamp", texts["timestamp"]))

    numbers = {name: _number(source[name], texts[name], arrows.get(name))
               for name in ("quantity", "unit_price", "amount") if name in source}
    for name, values in numbers.items():
        reasons.append((missing[name], f"missing {name}", None))
        reasons.append((values.isna().to_numpy(), f"non-numeric {name}", texts[name]))
    for name, width in FIELD_WIDTHS.items():
        if name in source:
            too_long = _longer_than(out[name], arrows.get(name), width)
            reasons.append((too_long, f"{name} longer than {width} characters", out[name]))
    quantity, unit_price, amount = (numbers.get(name) for name in ("quantity", "unit_price",
                                                                   "amount"))
    if amount is None:
        assert quantity is not None and unit_price is not None
        amount = (quantity * unit_price).round(6)
    if quantity is None:
        quantity = pd.Series(np.where(amount < 0, -1.0, 1.0), index=frame.index)
    if unit_price is None:
        safe = quantity.where(quantity != 0)
        unit_price = (amount / safe).abs().fillna(0.0).round(6)
    out["quantity"], out["unit_price"], out["amount"] = quantity, unit_price, amount
    out["line_no"] = raw.line_numbers

    return out, _first_reason(frame.index, reasons), \
        {name: arrows[name] for name in TEXT_FIELDS if name in arrows}


def _null_mask(array: pa.ChunkedArray) -> np.ndarray:
    """True where the Arrow array is null, as a numpy bool array."""
    if array.null_count == 0:
        return np.zeros(len(array), dtype=bool)
    return pc.is_null(array).to_numpy(zero_copy_only=False)


def _first_reason(index: pd.Index, reasons: list[Reason]) -> pd.Series:
    """Per row, the first reason whose mask is true (None for a good row)."""
    reason = pd.Series(None, index=index, dtype=object)
    given = np.zeros(len(index), dtype=bool)
    for mask, message, value in reasons:
        todo = mask & ~given
        if not todo.any():
            continue
        given |= todo
        if value is None:
            reason[todo] = message
        else:
            reason[todo] = message + " " + value[todo].astype(str).str.slice(0, 40).map(repr)
    return reason


_HASH_KEY = "segmint-lines-01"  # 16 characters (SipHash key)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def line_hashes(lines: pd.DataFrame) -> pd.Series:
    """A signed 64-bit integer naming a line by every field as stored (so XLSX and CSV copies of
    a line agree): pandas' vectorised row hash (SipHash of each field, combined), one pass.

    The store keeps (ts, line_hash) unique, so two different lines are only taken for one when
    they share the timestamp and all 64 bits (see engine.models.TransactionLine)."""
    fields = lines[["invoice", "stock_code", "description", "customer_id", "country",
                    "quantity", "unit_price", "amount", "ts"]]
    hashed = pd.util.hash_pandas_object(fields, index=False, hash_key=_HASH_KEY).to_numpy()
    return pd.Series(hashed.view(np.int64), index=lines.index)


def _hex(hashes: pd.Series) -> pd.Series:
    """16 hex digits of each 64-bit hash, vectorised."""
    data = hashes.to_numpy().astype(">i8").view(np.uint8).reshape(-1, 8)
    digits = np.empty((len(data), 16), dtype=np.uint8)
    digits[:, 0::2] = _HEX[data >> 4]
    digits[:, 1::2] = _HEX[data & 15]
    text = pa.Array.from_buffers(pa.binary(16), len(data), [None, pa.py_buffer(digits)])
    return pd.Series(text.cast(pa.binary()).cast(pa.string()).to_numpy(zero_copy_only=False),
                     index=hashes.index, dtype=object)


def stage_lines(raw: RawFile, preset: Preset) -> tuple[StagedFile, pd.DataFrame]:
    """Validated, de-duplicated lines ready for write_files, and the rejects report frame."""
    lines, reason, arrows = _normalise(raw, preset)
    bad = reason.notna()
    rejects = pd.DataFrame({"line": lines.loc[bad, "line_no"], "reason": reason[bad]})
    rejects = pd.concat([rejects, raw.frame.loc[bad].astype(str)], axis=1)
    lines_read, rejected = len(lines), int(bad.sum())
    returns = _affix_mask(lines["invoice"], arrows.get("invoice"), pc.starts_with, "C")
    good = lines.loc[~bad].copy() if rejected else lines
    del lines
    good["line_hash"] = line_hashes(good)
    # Exact duplicates: the same (ts, line_hash) pair the store keeps unique.
    duplicate = good.duplicated(subset=["ts", "line_hash"]).to_numpy()
    if "invoice" not in preset.columns or preset.columns["invoice"] not in raw.frame.columns:
        # Without invoice numbers each line is its own order, named after the line itself.
        good["invoice"] = "L" + _hex(good["line_hash"])
    duplicates = int(duplicate.sum())
    if rejected:
        returns = returns[~bad.to_numpy()]
    good["is_return"] = returns | (good["quantity"] < 0).to_numpy()
    # One copy of the rows kept, in STAGED_LINE_COLUMNS order, numbered from 0.
    good = good.loc[~duplicate, STAGED_LINE_COLUMNS] if duplicates else good[STAGED_LINE_COLUMNS]
    good.index = pd.RangeIndex(len(good))
    if rejected or duplicates:  # the Arrow text columns, the same rows kept
        keep = ~bad.to_numpy()
        keep[np.flatnonzero(keep)[duplicate]] = False
        arrows = {name: array.filter(pa.array(keep)) for name, array in arrows.items()}
    staged = StagedFile(
        path=str(raw.path), sha256=raw.sha256, kind="transactions", lines_read=lines_read,
        duplicates=duplicates, rejected=rejected, lines=good, text_arrays=arrows,
    )
    return staged, rejects.reset_index(drop=True)
