"""Small lines frames for the engine tests: single lines by hand, and a clusterable synthetic
population in which every one of the six classes occurs."""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

LINE_COLUMNS = ["invoice", "stock_code", "description", "quantity", "unit_price", "amount", "ts",
                "customer_id", "country", "is_return"]
AS_OF = date(2012, 1, 1)


def line(customer: str | None, invoice: str, ts: str | datetime, amount: float, *,
         stock_code: str | None = "P1", quantity: float | None = None) -> dict[str, Any]:
    """One line; a negative amount (or an invoice starting with C) is a return."""
    returned = invoice.startswith("C") or amount < 0
    qty = quantity if quantity is not None else (-1.0 if returned else 1.0)
    return {"invoice": invoice, "stock_code": stock_code, "description": stock_code,
            "quantity": qty, "unit_price": abs(amount) / abs(qty), "amount": amount,
            "ts": pd.Timestamp(ts), "customer_id": customer, "country": "United Kingdom",
            "is_return": returned}


def lines_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=LINE_COLUMNS)
    frame["ts"] = frame["ts"].astype("datetime64[ns]")
    frame["is_return"] = frame["is_return"].astype(bool)
    for column in ("quantity", "unit_price", "amount"):
        frame[column] = frame[column].astype(float)
    return frame


def population(seed: int = 0, scale: int = 1) -> pd.DataFrame:
    """Well-separated spenders (high / mid / low) plus new, negative and growing customers,
    in 2011, for as_of 2012-01-01. Sign-up dates are unknown (first purchase is the default)."""
    rng = random.Random(seed)
    products = [f"P{i:02d}" for i in range(12)]
    rows: list[dict[str, Any]] = []
    counter = 0

    def buy(customer: str, day: date, amount: float, returned: bool = False) -> None:
        nonlocal counter
        counter += 1
        invoice = f"{'C' if returned else ''}{counter:06d}"
        ts = datetime(day.year, day.month, day.day, 10) + timedelta(minutes=rng.randint(0, 400))
        pair = rng.randrange(len(products) // 2)  # products are bought in fixed pairs
        for code in products[2 * pair:2 * pair + 2]:
            share = round(amount / 2, 2)
            rows.append(line(customer, invoice, ts, -share if returned else share,
                             stock_code=code))

    def day_between(first: date, last: date) -> date:
        return first + timedelta(days=rng.randint(0, (last - first).days))

    year_start, year_end = date(2011, 1, 1), date(2011, 12, 31)
    for i in range(30 * scale):  # high: 15-21 invoices of 300-500, last one in late December
        for _ in range(rng.randint(14, 20)):
            buy(f"H{i:03d}", day_between(year_start, date(2011, 12, 15)), rng.uniform(300, 500))
        buy(f"H{i:03d}", day_between(date(2011, 12, 20), year_end), rng.uniform(300, 500))
    for i in range(60 * scale):  # mid: 4-6 invoices of 60-100, the last in late September
        for _ in range(rng.randint(3, 5)):
            buy(f"M{i:03d}", day_between(date(2011, 2, 1), date(2011, 9, 10)), rng.uniform(60, 100))
        buy(f"M{i:03d}", day_between(date(2011, 9, 20), date(2011, 9, 30)), rng.uniform(60, 100))
    for i in range(90 * scale):  # low: one small invoice in early March
        buy(f"L{i:03d}", day_between(date(2011, 3, 1), date(2011, 3, 15)), rng.uniform(5, 20))
    for i in range(15 * scale):
        buy(f"N{i:03d}", day_between(date(2011, 11, 1), year_end), rng.uniform(20, 60))
    for i in range(5 * scale):
        customer, when = f"X{i:03d}", day_between(date(2011, 2, 1), date(2011, 5, 1))
        buy(customer, when, 30.0)
        buy(customer, when + timedelta(days=3), 50.0, returned=True)
    for i in range(10 * scale):
        customer = f"G{i:03d}"
        buy(customer, day_between(date(2011, 1, 5), date(2011, 2, 28)), 20.0)
        for _ in range(3):
            buy(customer, day_between(date(2011, 10, 15), year_end), rng.uniform(150, 250))
    return lines_frame(rows)


def write_generic_csv(lines: pd.DataFrame, path: Path) -> Path:
    """The frame as a generic-preset CSV (the default [ingest.mapping] column names)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "timestamp", "invoice", "stock_code", "description",
                         "quantity", "unit_price", "country"])
        for row in lines.itertuples(index=False):
            writer.writerow([row.customer_id, f"{row.ts:%Y-%m-%d %H:%M:%S}", row.invoice,
                             row.stock_code, row.description, row.quantity, row.unit_price,
                             row.country])
    return path
