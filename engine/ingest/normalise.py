"""Checks and normalisation of a transactions file's rows, vectorised (no row loop).

Each source column becomes stored text, a number or a timestamp; every row gets the first reason
it cannot be loaded (empty line, missing invoice, bad timestamp, non-numeric quantity, a text
longer than its stored width, a figure or a date outside LineLimits ...) or None. Text columns
that Arrow holds stay Arrow arrays too, so the store can copy them without converting Python
strings back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.ingest.presets import Preset
from engine.ingest.readers import RawFile, text_cells_arrow, whole_number_ids
from engine.settings import IngestSettings, Settings
from engine.store.tables import LINES, text_widths

# Lines dated up to a day after the load still load: the file's clock may be a time zone ahead.
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class LineLimits:
    """The plausible range of a line: quantity, unit price and amount within +-max_abs_amount
    (and finite), timestamps from earliest to latest (None: no upper bound). A line outside is
    a rejected line with its reason: one absurd value would otherwise poison every later run
    (an infinite amount), or move as_of (a line dated 2100)."""

    # The defaults are [ingest]'s: written once, in engine.settings.
    max_abs_amount: float = IngestSettings.model_fields["max_abs_amount"].default
    earliest: datetime = datetime.combine(IngestSettings.model_fields["earliest_date"].default,
                                          datetime.min.time())
    latest: datetime | None = None

    @classmethod
    def for_load(cls, settings: Settings, now: datetime) -> LineLimits:
        """The limits of a load at `now` (aware, or naive UTC), from [ingest]."""
        utc = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
        return cls(max_abs_amount=settings.ingest.max_abs_amount,
                   earliest=datetime.combine(settings.ingest.earliest_date, datetime.min.time()),
                   latest=utc + FUTURE_SLACK)


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


def affix_mask(cells: pd.Series, array: pa.ChunkedArray | None, test: Callable[..., Any],
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
FIELD_WIDTHS = text_widths(LINES, TEXT_FIELDS)


def normalise(raw: RawFile, preset: Preset, limits: LineLimits | None = None
              ) -> tuple[pd.DataFrame, pd.Series, dict[str, pa.ChunkedArray]]:
    """(lines frame with line_no, reject reason per row or None; vectorised, no row loop), plus
    the text columns of the lines frame that Arrow holds as well (the same cells, row for row),
    for the store to copy without converting Python strings back. limits: the plausible range of
    a line (default LineLimits(): no upper date bound)."""
    limits = limits or LineLimits()
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
    reasons.append(((out["ts"] < limits.earliest).to_numpy(),
                    f"timestamp before [ingest] earliest_date {limits.earliest:%Y-%m-%d}",
                    texts["timestamp"]))
    if limits.latest is not None:
        reasons.append(((out["ts"] > limits.latest).to_numpy(),
                        f"timestamp after the load ({limits.latest - FUTURE_SLACK:%Y-%m-%d %H:%M}"
                        " UTC, a day's slack allowed)", texts["timestamp"]))

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
    ceiling = f"beyond [ingest] max_abs_amount {limits.max_abs_amount:g}"
    for name, values in numbers.items():
        reasons.append(((values.abs() > limits.max_abs_amount).to_numpy(), f"{name} {ceiling}",
                        texts[name]))
    if amount is None:
        assert quantity is not None and unit_price is not None
        with np.errstate(over="ignore"):  # an infinite product is rejected just below
            amount = (quantity * unit_price).round(6)
        # Each factor within the ceiling, their product not (or not even finite).
        reasons.append((~(amount.abs() <= limits.max_abs_amount).to_numpy()
                        & quantity.notna().to_numpy() & unit_price.notna().to_numpy(),
                        f"amount {ceiling}", amount))
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
