"""Column layouts of a transactions file: the named presets, the generic one built from
[ingest.mapping], and the choice of a preset for a file (by name, or by the columns it has)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from engine.ingest.readers import IngestError, RawFile
from engine.settings import IngestMapping, Settings

log = logging.getLogger(__name__)

FIELDS = ["invoice", "stock_code", "description", "quantity", "unit_price", "amount", "timestamp",
          "customer_id", "country"]


@dataclass(frozen=True)
class Preset:
    name: str
    columns: dict[str, str]  # field -> source column
    timestamp_formats: tuple[str, ...]
    required: tuple[str, ...]


def _online_retail(name: str, invoice: str, unit_price: str, customer_id: str) -> Preset:
    """The UCI Online Retail layouts (I and II differ only in three column names)."""
    columns = {"invoice": invoice, "stock_code": "StockCode", "description": "Description",
               "quantity": "Quantity", "timestamp": "InvoiceDate", "unit_price": unit_price,
               "customer_id": customer_id, "country": "Country"}
    # The published CSV writes ISO timestamps; the original spreadsheet export m/d/Y H:M.
    return Preset(name, columns, ("%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M", "ISO8601"),
                  tuple(columns))


PRESETS: dict[str, Preset] = {
    "online-retail": _online_retail("online-retail", "InvoiceNo", "UnitPrice", "CustomerID"),
    "online-retail-ii": _online_retail("online-retail-ii", "Invoice", "Price", "Customer ID"),
}


def generic_preset(mapping: IngestMapping) -> Preset:
    columns = {name: getattr(mapping, name) for name in FIELDS if getattr(mapping, name)}
    return Preset("generic", columns, (mapping.timestamp_format, "ISO8601"),
                  ("customer_id", "timestamp"))


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
