"""A tiny online-retail-format CSV (a few hundred lines) for the benchmark smoke test.

`python -m bench.tiny_data OUT.csv` writes it; deterministic for a seed. It has what the real file
has in miniature: cancellations, lines without a customer, exact duplicates, a postage code.
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country"]
PRODUCTS = [(f"{20000 + i}", f"TINY PRODUCT {i:02d}", round(0.5 + (i % 9) * 0.75, 2))
            for i in range(30)]


def write_tiny_online_retail(path: Path, *, customers: int = 40, invoices: int = 140,
                             seed: int = 7) -> int:
    """Write the file and return its number of data lines."""
    rng = random.Random(seed)
    start = datetime(2011, 1, 3, 9, 0)
    rows: list[list[str]] = []
    for number in range(invoices):
        customer = "" if number % 13 == 0 else str(12000 + rng.randrange(customers))
        when = start + timedelta(days=rng.randrange(330), minutes=rng.randrange(600))
        cancelled = number % 17 == 5
        invoice = f"{'C' if cancelled else ''}{540000 + number}"
        country = rng.choice(["United Kingdom", "France", "Germany"])
        # Popular pairs make the basket rules non-empty.
        first = rng.randrange(len(PRODUCTS))
        items = {first, (first + 1) % len(PRODUCTS)}
        items.update(rng.sample(range(len(PRODUCTS)), rng.randrange(0, 3)))
        for item in sorted(items):
            code, description, price = PRODUCTS[item]
            quantity = rng.randrange(1, 13) * (-1 if cancelled else 1)
            rows.append([invoice, code, description, str(quantity),
                         when.strftime("%Y-%m-%d %H:%M:%S"), f"{price:.2f}", customer, country])
        if number % 11 == 0:
            rows.append([invoice, "POST", "POSTAGE", "1", when.strftime("%Y-%m-%d %H:%M:%S"),
                         "18.00", customer, country])
    rows.extend(rows[i] for i in range(0, len(rows), 50))  # exact duplicates
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"{write_tiny_online_retail(args.out, seed=args.seed)} lines written to {args.out}")


if __name__ == "__main__":
    main()
