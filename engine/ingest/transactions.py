"""A transactions file staged for the store: normalised, checked lines named by a 64-bit hash,
exact duplicates dropped, returns marked, and the rejects report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.columns import STAGED_LINE_COLUMNS
from engine.ingest.normalise import affix_mask, normalise
from engine.ingest.presets import Preset
from engine.ingest.readers import RawFile
from engine.store.staged import StagedFile

_HASH_KEY = "segmint-lines-01"  # 16 characters (SipHash key)


def line_hashes(lines: pd.DataFrame) -> pd.Series:
    """A signed 64-bit integer naming a line by every field as stored (so XLSX and CSV copies of
    a line agree): pandas' vectorised row hash (SipHash of each field, combined), one pass.

    The store keeps (ts, line_hash) unique, so two different lines are only taken for one when
    they share the timestamp and all 64 bits (see engine.models.TransactionLine)."""
    fields = lines[["invoice", "stock_code", "description", "customer_id", "country",
                    "quantity", "unit_price", "amount", "ts"]]
    hashed = pd.util.hash_pandas_object(fields, index=False, hash_key=_HASH_KEY).to_numpy()
    return pd.Series(hashed.view(np.int64), index=lines.index)


def hex_digits(hashes: pd.Series) -> pd.Series:
    """16 lower-case hex digits of each 64-bit hash (its two's-complement bytes, big-endian, as
    format(h % 2**64, '016x') writes them): bytes.hex over all hashes at once, cut every 16."""
    digits = hashes.to_numpy().astype(">i8").tobytes().hex().encode("ascii")
    text = pa.Array.from_buffers(pa.binary(16), len(hashes), [None, pa.py_buffer(digits)])
    return pd.Series(text.cast(pa.binary()).cast(pa.string()).to_numpy(zero_copy_only=False),
                     index=hashes.index, dtype=object)


def stage_lines(raw: RawFile, preset: Preset) -> tuple[StagedFile, pd.DataFrame]:
    """Validated, de-duplicated lines ready for write_files, and the rejects report frame."""
    lines, reason, arrows = normalise(raw, preset)
    bad = reason.notna()
    rejects = pd.DataFrame({"line": lines.loc[bad, "line_no"], "reason": reason[bad]})
    rejects = pd.concat([rejects, raw.frame.loc[bad].astype(str)], axis=1)
    lines_read, rejected = len(lines), int(bad.sum())
    returns = affix_mask(lines["invoice"], arrows.get("invoice"), pc.starts_with, "C")
    good = lines.loc[~bad].copy() if rejected else lines
    del lines
    good["line_hash"] = line_hashes(good)
    # Exact duplicates: the same (ts, line_hash) pair the store keeps unique.
    duplicate = good.duplicated(subset=["ts", "line_hash"]).to_numpy()
    if "invoice" not in preset.columns or preset.columns["invoice"] not in raw.frame.columns:
        # Without invoice numbers each line is its own order, named after the line itself.
        good["invoice"] = "L" + hex_digits(good["line_hash"])
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
