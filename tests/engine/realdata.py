"""The real Online Retail file read straight into the lines frame (no database), for reference
figures; exact duplicate lines are dropped as ingest does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


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
