"""What ingest hands the store to write (StagedFile), what an earlier load of the same bytes
did (LoadedFile), and the text layout of a stored timestamp. Below both the line writer
(engine.store.lines_write) and its SQLite staging (engine.store.sqlite_staging).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class LoadedFile:
    """A source_file row: what an earlier ingest of the same bytes did."""

    id: int
    path: str
    kind: str
    loaded_at: datetime
    lines_read: int
    lines_loaded: int
    duplicates: int
    rejected: int


@dataclass
class StagedFile:
    """A validated file, ready to be written: transactions (lines) or customers (customers)."""

    path: str
    sha256: str
    kind: str  # transactions | customers
    lines_read: int
    duplicates: int  # exact duplicates inside the file
    rejected: int
    lines: pd.DataFrame | None = None  # STAGED_LINE_COLUMNS
    customers: pd.DataFrame | None = None  # CUSTOMER_COLUMNS
    # Text columns of `lines` that Arrow holds too (the same cells, row for row), copied as they
    # are to the SQLite staging file instead of converting the Python strings back.
    text_arrays: dict[str, pa.ChunkedArray] = field(default_factory=dict)
    loaded: int = 0  # filled in by write_files
    duplicates_in_db: int = 0  # filled in by write_files


def timestamp_array(ts: pd.Series) -> pa.Array:
    """'YYYY-MM-DD HH:MM:SS.ffffff' (the layout SQLAlchemy's SQLite DateTime writes, so range
    filters compare as text correctly) as an Arrow string array, formatted once per distinct
    time (lines of one invoice share it) and repeated by index."""
    codes, distinct = pd.factorize(ts.to_numpy(dtype="datetime64[us]"))
    text = pc.replace_substring(pa.array(np.datetime_as_string(distinct, unit="us")), "T", " ")
    return text.take(pa.array(codes)) if len(codes) else text
