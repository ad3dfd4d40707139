"""Real data read straight into the lines frame (no database), for reference figures: the Online
Retail file (exact duplicate lines dropped as ingest does) and the CDNOW sample."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

CDNOW = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cdnow_sample.csv"
CDNOW_END = date(1997, 9, 30)


def read_online_retail(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str,
                                   "Description": str, "Country": str})
    raw = raw.drop_duplicates()
    customer = raw["CustomerID"].str.replace(r"\.0$", "", regex=True)
    lines = pd.DataFrame({
        "invoice": raw["InvoiceNo"].astype(str),
        "stock_code": raw["StockCode"],
        "description": raw["Description"],
        "quantity": raw["Quantity"].astype(float),
        "unit_price": raw["UnitPrice"].astype(float),
        "amount": raw["Quantity"].astype(float) * raw["UnitPrice"].astype(float),
        "ts": pd.to_datetime(raw["InvoiceDate"], format="%Y-%m-%d %H:%M:%S"),
        "customer_id": customer.where(customer.notna(), None),
        "country": raw["Country"],
    })
    lines["is_return"] = lines["invoice"].str.startswith("C") | (lines["quantity"] < 0)
    return lines.reset_index(drop=True)


def cdnow_lines() -> pd.DataFrame:
    """The CDNOW sample as the generic mapping loads it: customer_id text, date YYYYMMDD, spend
    as amount, no invoices (each line an order) and no stock codes."""
    if not CDNOW.exists():
        pytest.skip(f"{CDNOW} is absent (../shared is not beside the checkout)")
    raw = pd.read_csv(CDNOW, dtype={"customer_id": str})
    return pd.DataFrame({
        "invoice": [f"L{i}" for i in range(len(raw))], "stock_code": None,
        "amount": raw["spend"].astype(float),
        "ts": pd.to_datetime(raw["date"].astype(str), format="%Y%m%d"),
        "customer_id": raw["customer_id"], "is_return": False,
    })
