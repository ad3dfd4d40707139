"""Reading CSV, CSV.gz, XLSX and Parquet files into text frames with physical line numbers.

Every cell comes back as text (or the file's own datetime/number type for XLSX and Parquet) so
validation can quote the value it rejects. `line_numbers` holds each row's line in the file
(header = line 1): for CSV the physical line where the record starts, for XLSX the sheet row, for
Parquet the row number counted the same way.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from engine.errors import SegmintError, first_line

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".txt": "csv", ".gz": "csv.gz", ".xlsx": "xlsx", ".xlsm": "xlsx",
           ".parquet": "parquet", ".pq": "parquet"}


class IngestError(SegmintError):
    """A file cannot be loaded at all (missing, unreadable, wrong columns); nothing was written."""


@dataclass
class RawFile:
    path: Path
    sha256: str
    format: str
    frame: pd.DataFrame
    line_numbers: np.ndarray


def file_format(path: Path) -> str:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes[-2:] == [".csv", ".gz"] or (suffixes and suffixes[-1] == ".gz"):
        return "csv.gz"
    kind = FORMATS.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise IngestError(f"{path}: unknown file format {path.suffix or '(no extension)'!r} "
                          "(expected .csv, .csv.gz, .xlsx or .parquet)")
    return kind


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise IngestError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise IngestError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read: {exc.strerror}") from None
    return digest.hexdigest()


def read_file(path: Path, sha256: str | None = None) -> RawFile:
    """Read a whole file; anything unreadable raises IngestError, one line naming the file."""
    if not path.exists():
        raise IngestError(f"{path}: file not found")
    kind = file_format(path)
    sha256 = sha256 or file_sha256(path)
    if kind in ("csv", "csv.gz"):
        frame, line_numbers = _read_csv(path, kind)
    elif kind == "xlsx":
        frame = _read_xlsx(path)
        line_numbers = np.arange(2, len(frame) + 2)
    else:
        frame = _read_parquet(path)
        line_numbers = np.arange(2, len(frame) + 2)
    frame.columns = [str(column).strip() for column in frame.columns]
    return RawFile(path=path, sha256=sha256, format=kind, frame=frame.reset_index(drop=True),
                   line_numbers=np.asarray(line_numbers, dtype=np.int64))


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        log.warning("%s: not UTF-8 (line %d), reading it as Windows-1252", path, line)
        return data.decode("cp1252", errors="replace")


def _read_csv(path: Path, kind: str) -> tuple[pd.DataFrame, np.ndarray]:
    data = path.read_bytes()
    if kind == "csv.gz":
        try:
            data = gzip.decompress(data)
        except EOFError:
            raise IngestError(f"{path}: truncated gzip file (the compressed stream ends early)") \
                from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise IngestError(f"{path}: not a readable gzip file: {exc}") from None
    if not data.strip():
        raise IngestError(f"{path}: file is empty")
    frame = _read_csv_arrow(data)
    if frame is not None:
        return frame, _csv_line_numbers(data, len(frame))
    text = _decode(path, data)
    if not text.strip():
        raise IngestError(f"{path}: file is empty")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[],
                            skip_blank_lines=False, engine="c")
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")
        raise IngestError(f"{path}: not readable as CSV: {detail}") from None
    except pd.errors.EmptyDataError:
        raise IngestError(f"{path}: file is empty") from None
    return frame, _csv_line_numbers(text, len(frame))


def _read_csv_arrow(data: bytes) -> pd.DataFrame | None:
    """The CSV parsed by Arrow (multi-threaded, no Python object per cell) into Arrow-backed
    text columns, or None to leave it to pandas: text that is not UTF-8, repeated column names,
    or anything Arrow cannot parse as is (rows of the wrong width, a blank line of spaces...).
    Cells come out exactly as pandas reads them with dtype=str and no NA values: '' for empty."""
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        header = next(csv.reader([first.decode("utf-8-sig")]), [])
    except UnicodeDecodeError:
        return None
    if not header or len(set(header)) != len(header):
        return None
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):
        return None
    if table.column_names != header or any(not pa.types.is_string(column.type)
                                            for column in table.columns):
        return None
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _csv_line_numbers(content: str | bytes, rows: int) -> np.ndarray:
    """Physical start line of each record. One record per line unless a quoted field spans lines."""
    if isinstance(content, bytes):  # counted on the bytes: b"\n" is never part of a character
        physical = content.count(b"\n") + (0 if content.endswith(b"\n") else 1)
    else:
        physical = content.count("\n") + (0 if content.endswith("\n") else 1)
    if physical - 1 == rows:
        return np.arange(2, rows + 2)
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    starts = []
    previous_end = reader.line_num
    for _ in reader:
        starts.append(previous_end + 1)
        previous_end = reader.line_num
    if len(starts) != rows:  # the csv module and pandas disagree; fall back to record order
        return np.arange(2, rows + 2)
    return np.asarray(starts)


def _read_xlsx(path: Path) -> pd.DataFrame:
    try:
        return pd.read_excel(path, sheet_name=0, dtype=str, keep_default_na=False, na_values=[],
                             engine="openpyxl")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise IngestError(f"{path}: not a readable XLSX workbook: {first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - openpyxl raises assorted types for corrupt files
        raise IngestError(f"{path}: not a readable XLSX workbook: {type(exc).__name__}") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise IngestError(f"{path}: not a readable Parquet file: {first_line(exc)}") from None


@cache
def _whitespace() -> str:
    """Every character str.strip() removes, for Arrow's utf8_trim."""
    return "".join(chr(code) for code in range(0x3100) if chr(code).isspace())


def whole_number_ids(ids: pd.Series, array: pa.ChunkedArray | None = None) -> pd.Series:
    """'17850.0' or '17850.00' (a spreadsheet's float) -> '17850', in transactions and customers
    files alike; only the rows that need it are touched (ids itself comes back when none does).
    array: the same cells in Arrow, if at hand."""
    if array is None:
        array = pa.array(ids.to_numpy(), type=pa.string(), from_pandas=True)
    floaty = pc.fill_null(pc.match_substring_regex(array, r"^\d+\.0+$"), False) \
        .to_numpy(zero_copy_only=False)
    if not floaty.any():
        return ids
    ids = ids.copy()
    ids[floaty] = ids[floaty].str.replace(r"\.0+$", "", regex=True)
    return ids


def text_cells(values: pd.Series) -> pd.Series:
    """Trimmed text with None for empty cells; whole floats (17850.0) written as integers.

    Every text column of a transactions or customers file goes through here."""
    return text_cells_arrow(values)[0]


def text_cells_arrow(values: pd.Series) -> tuple[pd.Series, pa.ChunkedArray | None]:
    """text_cells(values), and the same cells as an Arrow string array (None when the column
    is not all text: XLSX/Parquet objects), so a caller can hand them on without converting the
    Python strings back."""
    if pd.api.types.is_float_dtype(values):
        whole = values.notna() & np.isfinite(values) & (values == np.round(values))
        text = values.astype(object)
        text[whole] = values[whole].astype("int64").astype(str)
        values = text
    array: pa.Array | pa.ChunkedArray | None = None
    if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_string(values.dtype.pyarrow_dtype):
        array = pa.array(values)  # a CSV read by Arrow: its own buffers, no copy
    elif values.dtype == object:
        try:
            array = pa.array(values.to_numpy(), type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all str (XLSX/Parquet objects)
            array = None
    if array is not None:
        trimmed = pc.utf8_trim(array, characters=_whitespace())
        trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        if isinstance(trimmed, pa.Array):
            trimmed = pa.chunked_array([trimmed], type=pa.string())
        # Repeated values (countries, codes, ids) share one Python string.
        cells = pd.Series(trimmed.to_pandas(deduplicate_objects=True).to_numpy(),
                          index=values.index, dtype=object)
        return cells, trimmed
    text = values.astype("string").str.strip()
    return text.astype(object).where(text.notna() & (text != ""), None), None
