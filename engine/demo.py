"""A synthetic retailer for demos, tests and benchmarks: deterministic for a seed, vectorised.

Writes OUTDIR/transactions.csv (the generic preset's default columns: invoice, stock_code,
description, quantity, unit_price, timestamp, customer_id, country) and OUTDIR/customers.csv
(customer_id, first_name, phone, signup_date, country, sms_consent, timezone).

The data covers DEMO_START .. DEMO_END (fixed, never today's date) and holds what the engine
needs to show every feature: a long tail of product popularity, a November/December peak,
repeat buyers from light to heavy (high / mid / low value), recent sign-ups (New), customers
whose returns exceed their purchases (Negative), customers whose spending ramps up in the last
90 days (Most Growth), C-prefixed return invoices, postage lines, and product bundles bought
together often enough for basket rules at support 0.02. Phone numbers come from reserved test
ranges (UK Ofcom drama 07700 900xxx, North American 555-01xx), so no real phone is ever used.

About 50 lines per customer: 2,000 customers give ~100k lines, 200,000 give ~10 million. No
Python loop runs per line or per customer; the CSVs are written by pyarrow.

A past offer pass with a known true effect (`past_offer=PastOffer()`, `--past-offer` on the
command line) closes the outcomes loop (SPEC.md "Outcomes"). The customers the offer reached
(SMS consent, a phone number, bought before the pass and not lapsed by then) are split into
treatment and holdout by the same deterministic assignment live passes use
(engine.outcomes.assign_group). In their attribution window after the pass, their own purchases
are replaced by a controlled response: each holdout customer buys with probability
`rate_holdout`, each treated one with `rate_treatment`, one order of a few popular items at a
random moment of the window. So the true uplift is exactly rate_treatment - rate_holdout (in
points: 10 by default), and the estimate from the data must find it. The pass itself is written
to OUTDIR/offer_pass.csv (customer_id, offer_id, pass_id, group, decided_at), which
`segmint ingest --offer-pass` records in the offer ledger. Without past_offer the bytes written
are exactly those of earlier versions (the offer draws come from their own generator).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

log = logging.getLogger(__name__)

DEMO_START = date(2024, 1, 1)
DEMO_END = date(2025, 11, 30)  # last day with transactions; a run's default as_of is 2025-12-01
RECENT_DAYS = 90

N_PRODUCTS = 600
N_BUNDLES = 12
POSTAGE_CODE, POSTAGE_PRICE = "POST", 18.0
# Relative order volume per calendar month (Jan..Dec): the gift trade peaks in Nov/Dec.
MONTH_WEIGHTS = np.array([0.75, 0.7, 0.85, 0.85, 0.9, 0.9, 0.85, 0.9, 1.05, 1.2, 1.7, 1.45])
WEEKDAY_WEIGHTS = np.array([1.1, 1.15, 1.1, 1.2, 0.9, 0.35, 0.7])  # Mon..Sun
COUNTRIES = np.array(["United Kingdom", "Germany", "France", "Ireland", "Netherlands", "Spain",
                      "Belgium", "United States", "Australia", "Norway"])
COUNTRY_WEIGHTS = np.array([0.8, 0.045, 0.04, 0.03, 0.02, 0.015, 0.015, 0.015, 0.01, 0.01])
TIMEZONES = np.array(["Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Dublin",
                      "Europe/Amsterdam", "Europe/Madrid", "Europe/Brussels", "America/New_York",
                      "Australia/Sydney", "Europe/Oslo"])
FIRST_NAMES = np.array([
    "Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow",
    "Noah", "Oliver", "George", "Arthur", "Muhammad", "Leo", "Harry", "Oscar", "Archie", "Henry",
    "Sophie", "Emma", "Lena", "Hannah", "Lucas", "Louis", "Chloe", "Ines", "Sean", "Aoife",
    "Daan", "Sanne", "Lucia", "Hugo", "Elise", "Emily", "James", "Charlotte", "Jack", "Nora",
])
ADJECTIVES = np.array([
    "WHITE", "RED", "PINK", "BLUE", "VINTAGE", "RETRO", "REGENCY", "JUMBO", "SMALL", "LARGE",
    "HEART", "STAR", "FLORAL", "SPOTTY", "GLASS", "WOODEN", "ENAMEL", "PAISLEY", "CHRISTMAS",
    "PARTY",
])
NOUNS = np.array([
    "T-LIGHT HOLDER", "LANTERN", "BAG", "MUG", "TEACUP AND SAUCER", "CAKE STAND", "BUNTING",
    "NAPKINS", "LUNCH BOX", "DOORMAT", "PHOTO FRAME", "CANDLE", "BOTTLE", "ALARM CLOCK", "SIGN",
    "PURSE", "NOTEBOOK", "WRAP", "BAUBLE", "GARLAND", "TIN", "CUSHION COVER", "HOT WATER BOTTLE",
    "PLATE", "BOWL", "PAPER CHAIN KIT", "GIFT TAPE", "SPOON", "COAT RACK", "PLANT POT",
])
# Customer behaviours and their shares: regular repeat buyers, recent sign-ups, returners,
# customers ramping up in the last 90 days, and light buyers who tried the shop once or twice.
BEHAVIOURS = ("regular", "new", "negative", "growth")
BEHAVIOUR_SHARES = np.array([0.86, 0.05, 0.03, 0.06])


@dataclass(frozen=True)
class PastOffer:
    """A past offer pass with a known true effect (see the module notes)."""

    offer_id: str = "demo-autumn"
    pass_id: str = "demo-past-pass"
    decided_at: datetime = datetime(2025, 10, 20, 10, 0, tzinfo=UTC)
    holdout_share: float = 0.2
    salt: str = "segmint-demo"
    rate_holdout: float = 0.15
    rate_treatment: float = 0.25
    attribution_days: int = 14

    @property
    def true_uplift(self) -> float:
        """In conversion-rate points."""
        return round((self.rate_treatment - self.rate_holdout) * 100, 10)




@dataclass(frozen=True)
class DemoData:
    transactions_path: Path
    customers_path: Path
    lines: int
    customers: int
    offer_pass_path: Path | None = None
    offer_pass_customers: int = 0
    true_uplift: float | None = None  # points, when a past offer pass was written


def _day_index(day: date) -> int:
    return (day - DEMO_START).days


def _daily_intensity() -> np.ndarray:
    days = np.arange(np.datetime64(DEMO_START), np.datetime64(DEMO_END) + 1)
    months = days.astype("datetime64[M]").astype(int) % 12
    weekdays = (days.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    return MONTH_WEIGHTS[months] * WEEKDAY_WEIGHTS[weekdays]


def _catalogue(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(stock codes, descriptions, prices, popularity weights with a long tail)."""
    codes = np.array([f"{20000 + 7 * i}" for i in range(N_PRODUCTS)], dtype=object)
    pairs = rng.permutation(len(ADJECTIVES) * len(NOUNS))[:N_PRODUCTS]
    descriptions = np.array([f"{ADJECTIVES[p // len(NOUNS)]} {NOUNS[p % len(NOUNS)]}"
                             for p in pairs], dtype=object)
    prices = np.round(np.clip(rng.lognormal(1.0, 0.7, N_PRODUCTS), 0.29, 40.0), 2)
    popularity = 1.0 / (np.arange(N_PRODUCTS) + 8.0) ** 1.15
    popularity = popularity[rng.permutation(N_PRODUCTS)]
    return codes, descriptions, prices, popularity / popularity.sum()


def _phones(rng: np.random.Generator, country_index: np.ndarray) -> np.ndarray:
    """E.164 numbers from reserved fictional ranges; UK customers get UK ones while they last."""
    uk = np.array([f"+447700900{i:03d}" for i in range(1000)], dtype=object)
    areas = [201, 202, 212, 213, 303, 305, 312, 404, 415, 503, 512, 602, 617, 702, 713, 718,
             720, 801, 808, 901]
    us = np.array([f"+1{area}55501{i:02d}" for area in areas for i in range(100)], dtype=object)
    n = len(country_index)
    phones = np.empty(n, dtype=object)
    is_uk = country_index == 0
    phones[is_uk] = uk[np.arange(is_uk.sum()) % len(uk)]
    spill = is_uk.copy()
    spill[is_uk] = np.arange(is_uk.sum()) >= len(uk)
    others = ~is_uk | spill
    phones[others] = us[np.arange(others.sum()) % len(us)]
    phones[rng.random(n) < 0.04] = ""  # some customers never gave a number
    return phones


def generate_demo_data(outdir: str | Path, *, customers: int = 2000, seed: int = 42,
                       past_offer: PastOffer | None = None) -> DemoData:
    """Write transactions.csv and customers.csv to OUTDIR (and offer_pass.csv with a past
    offer pass); same seed, size and past offer, same bytes."""
    rng = np.random.default_rng(seed)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    n = int(customers)
    n_days = _day_index(DEMO_END) + 1
    recent_start = n_days - RECENT_DAYS

    # Customers ------------------------------------------------------------------------------
    behaviour = rng.choice(len(BEHAVIOURS), size=n, p=BEHAVIOUR_SHARES)
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_WEIGHTS)
    # Order rate per 30 days: lognormal, so a few heavy buyers carry much of the revenue.
    rate = rng.lognormal(np.log(0.6), 0.85, n)
    basket = 0.5 + rng.gamma(2.0, 1.3, n)  # mean lines per order beyond bundles
    quantity_scale = np.where(rng.random(n) < 0.12, rng.integers(4, 12, n), 1)  # wholesalers
    # An existing customer base at the start plus steady acquisition; half of them lapse.
    first = np.where(rng.random(n) < 0.35, rng.integers(0, 30, n), rng.integers(0, n_days - 120, n))
    churn = rng.random(n) < 0.5
    lapse = first + 60 + rng.exponential(300.0, n).astype(np.int64)
    last = np.where(churn, lapse, n_days - 1).clip(max=n_days - 1)
    signup = first - rng.integers(0, 200, n)

    new = behaviour == BEHAVIOURS.index("new")
    signup[new] = n_days - rng.integers(5, 80, new.sum())
    first[new] = signup[new] + rng.integers(0, 5, new.sum())
    last[new] = n_days - 1
    rate[new] = rng.uniform(0.6, 1.5, new.sum())

    growth = behaviour == BEHAVIOURS.index("growth")
    first[growth] = rng.integers(0, recent_start - 200, growth.sum())
    signup[growth] = first[growth] - rng.integers(0, 60, growth.sum())
    last[growth] = recent_start - 1
    rate[growth] = rng.uniform(0.05, 0.12, growth.sum())

    negative = behaviour == BEHAVIOURS.index("negative")
    rate[negative] = rng.uniform(0.1, 0.3, negative.sum())

    # Order windows: one per customer, plus a burst in the last 90 days for growth customers.
    growth_ids = np.flatnonzero(growth)
    window_customer = np.concatenate([np.arange(n), growth_ids])
    window_start = np.concatenate([first, np.full(len(growth_ids), recent_start)])
    window_end = np.concatenate([last, np.full(len(growth_ids), n_days - 1)])
    window_rate = np.concatenate([rate, rng.uniform(1.2, 2.5, len(growth_ids))])
    expected = window_rate * (window_end - window_start + 1) / 30.0
    orders_per_window = rng.poisson(expected)
    orders_per_window[: n] = np.maximum(orders_per_window[: n], 1)  # everyone bought once

    # Orders: seasonal day within the window by inverting the cumulative daily intensity.
    order_customer = np.repeat(window_customer, orders_per_window)
    lo = np.repeat(window_start, orders_per_window)
    hi = np.repeat(window_end, orders_per_window)
    cdf = np.concatenate([[0.0], np.cumsum(_daily_intensity())])
    u = cdf[lo] + rng.random(len(order_customer)) * (cdf[hi + 1] - cdf[lo])
    order_day = np.searchsorted(cdf, u, side="right") - 1
    order_day = order_day.clip(lo, hi)
    order_second = order_day.astype(np.int64) * 86400 + rng.integers(8 * 3600, 19 * 3600,
                                                                     len(order_day)) // 60 * 60

    # Invoice numbers follow time, like a real till.
    order_rank = np.empty(len(order_second), dtype=np.int64)
    order_rank[np.lexsort((order_customer, order_second))] = np.arange(len(order_second))
    order_invoice = 500000 + order_rank

    # Lines: popularity-weighted items, plus a bundle in about half the orders.
    codes, descriptions, prices, popularity = _catalogue(rng)
    n_orders = len(order_customer)
    items_per_order = 1 + rng.poisson(basket[order_customer])
    line_order = np.repeat(np.arange(n_orders), items_per_order)
    line_product = rng.choice(N_PRODUCTS, size=len(line_order), p=popularity)
    bundles = rng.choice(N_PRODUCTS, size=(N_BUNDLES, 3), replace=False, p=popularity)
    bundle_size = np.where(np.arange(N_BUNDLES) % 3 == 0, 3, 2)
    bundle_weights = 1.0 / (np.arange(N_BUNDLES) + 2.0)
    with_bundle = np.flatnonzero(rng.random(n_orders) < 0.45)
    chosen = rng.choice(N_BUNDLES, size=len(with_bundle), p=bundle_weights / bundle_weights.sum())
    bundle_lines = np.repeat(with_bundle, bundle_size[chosen])
    offsets = np.arange(len(bundle_lines)) - np.repeat(np.cumsum(bundle_size[chosen])
                                                       - bundle_size[chosen], bundle_size[chosen])
    bundle_products = bundles[np.repeat(chosen, bundle_size[chosen]), offsets]
    line_order = np.concatenate([line_order, bundle_lines])
    line_product = np.concatenate([line_product, bundle_products])
    # One line per product and order, as a till would print it.
    key = np.sort(line_order.astype(np.int64) * N_PRODUCTS + line_product)
    key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    line_order, line_product = key // N_PRODUCTS, key % N_PRODUCTS
    line_customer = order_customer[line_order]
    line_quantity = (rng.geometric(0.3, len(line_order)) * quantity_scale[line_customer])
    line_price = prices[line_product]

    # Postage on about half of the orders from outside the UK.
    abroad = np.flatnonzero((country[order_customer] != 0) & (rng.random(n_orders) < 0.5))

    # Returns: some lines of regular customers; every line of negative customers, returned with
    # more than they bought in the window (they return goods bought before it).
    returned = (rng.random(len(line_order)) < 0.015) | negative[line_customer]
    returned_idx = np.flatnonzero(returned)
    return_quantity = np.where(
        negative[line_customer[returned_idx]],
        line_quantity[returned_idx] * 2 + 1,
        np.minimum(line_quantity[returned_idx], rng.integers(1, 4, len(returned_idx))),
    )
    return_delay = rng.integers(1, 21, n_orders)[line_order[returned_idx]] * 86400
    return_second = np.minimum(order_second[line_order[returned_idx]] + return_delay,
                               n_days * 86400 - 3600)

    # The customers' own draws (the order of the draws keeps the bytes of earlier versions).
    first_names = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    phones = _phones(rng, country)
    consent = rng.random(n) < 0.7

    # Assemble every line: purchases, postage, returns.
    invoice_number = np.concatenate([order_invoice[line_order], order_invoice[abroad],
                                     order_invoice[line_order[returned_idx]]])
    is_return = np.concatenate([np.zeros(len(line_order) + len(abroad), dtype=bool),
                                np.ones(len(returned_idx), dtype=bool)])
    product = np.concatenate([line_product, np.full(len(abroad), -1),
                              line_product[returned_idx]])
    quantity = np.concatenate([line_quantity, np.ones(len(abroad), dtype=np.int64),
                               -return_quantity])
    price = np.concatenate([line_price, np.full(len(abroad), POSTAGE_PRICE),
                            line_price[returned_idx]])
    seconds = np.concatenate([order_second[line_order], order_second[abroad], return_second])
    customer = np.concatenate([line_customer, order_customer[abroad],
                               line_customer[returned_idx]])
    offer_pass: pa.Table | None = None
    if past_offer is not None:
        reached = consent & (phones != "") & (first <= _offer_day(past_offer)) & (
            last >= _offer_day(past_offer))
        columns = (invoice_number, is_return, product, quantity, price, seconds, customer)
        (invoice_number, is_return, product, quantity, price, seconds, customer), offer_pass = (
            _past_offer_response(past_offer, np.random.default_rng([seed, 15]), columns,
                                 reached=reached, popularity=popularity, prices=prices))
    order = _chronological(seconds, is_return, invoice_number, product)

    customer_ids = np.array([str(100001 + i) for i in range(n)], dtype=object)
    code_table = pa.array(np.append(codes, POSTAGE_CODE).tolist(), type=pa.string())
    text_table = pa.array(np.append(descriptions, "POSTAGE").tolist(), type=pa.string())
    product_index = pa.array(np.where(product[order] < 0, N_PRODUCTS, product[order]))
    invoice_text = pa.array(invoice_number[order]).cast(pa.string())
    invoice_text = pc.if_else(pa.array(is_return[order]),
                              pc.binary_join_element_wise("C", invoice_text, ""), invoice_text)
    start_second = np.datetime64(DEMO_START, "s").astype(np.int64)
    timestamps = pa.array((seconds[order] + start_second).astype("datetime64[s]")).cast(pa.string())
    transactions = pa.table({
        "invoice": invoice_text,
        "stock_code": pc.take(code_table, product_index),
        "description": pc.take(text_table, product_index),
        "quantity": pa.array(quantity[order]),
        "unit_price": pa.array(price[order]),
        "timestamp": timestamps,
        "customer_id": pc.take(pa.array(customer_ids.tolist(), type=pa.string()),
                               pa.array(customer[order])),
        "country": pc.take(pa.array(COUNTRIES.tolist()), pa.array(country[customer[order]])),
    })

    signup_dates = (np.datetime64(DEMO_START) + np.minimum(signup, first)).astype(str)
    customers_table = pa.table({
        "customer_id": pa.array(customer_ids.tolist(), type=pa.string()),
        "first_name": pa.array(first_names.tolist()),
        "phone": pa.array(phones.tolist(), type=pa.string()),
        "signup_date": pa.array(signup_dates.tolist()),
        "country": pa.array(COUNTRIES[country].tolist()),
        "sms_consent": pa.array(consent),
        "timezone": pa.array(TIMEZONES[country].tolist()),
    })

    transactions_path = out / "transactions.csv"
    customers_path = out / "customers.csv"
    _write_csv(transactions, transactions_path)
    _write_csv(customers_table, customers_path)
    log.info("demo data: %d customers, %d lines in %s", n, transactions.num_rows, out)
    if past_offer is None or offer_pass is None:
        return DemoData(transactions_path, customers_path, transactions.num_rows, n)
    offer_pass = offer_pass.set_column(
        0, "customer_id", pc.take(pa.array(customer_ids.tolist(), type=pa.string()),
                                  offer_pass.column("customer_id")))
    offer_pass_path = out / "offer_pass.csv"
    _write_csv(offer_pass, offer_pass_path)
    log.info("demo offer pass: %d customers, true uplift %.1f points, in %s",
             offer_pass.num_rows, past_offer.true_uplift, offer_pass_path)
    return DemoData(transactions_path, customers_path, transactions.num_rows, n,
                    offer_pass_path=offer_pass_path, offer_pass_customers=offer_pass.num_rows,
                    true_uplift=past_offer.true_uplift)


def _offer_day(offer: PastOffer) -> int:
    return _day_index(offer.decided_at.astimezone(UTC).date())


def _past_offer_response(offer: PastOffer, rng: np.random.Generator,
                         columns: tuple[np.ndarray, ...], *, reached: np.ndarray,
                         popularity: np.ndarray, prices: np.ndarray,
                         ) -> tuple[tuple[np.ndarray, ...], pa.Table]:
    """The lines with the reached customers' attribution windows replaced by the controlled
    response (see the module notes), and the pass's ledger rows (customer as an index)."""
    from engine.outcomes import HOLDOUT, assign_group

    invoice, is_return, product, quantity, price, seconds, customer = columns
    start_second = np.datetime64(DEMO_START, "s").astype(np.int64)
    decided = int(np.datetime64(offer.decided_at.astimezone(UTC).replace(tzinfo=None), "s")
                  .astype(np.int64)) - start_second
    end = decided + offer.attribution_days * 86400
    members = np.flatnonzero(reached)
    holdout = np.array([assign_group(str(100001 + i), offer.offer_id, salt=offer.salt,
                                     holdout_share=offer.holdout_share) == HOLDOUT
                        for i in members], dtype=bool)
    # Their own purchases and returns in the window give way to the controlled response.
    keep = ~(reached[customer] & (seconds > decided) & (seconds <= end))
    rate = np.where(holdout, offer.rate_holdout, offer.rate_treatment)
    buyers = members[rng.random(len(members)) < rate]
    moment = decided + 60 * rng.integers(1, offer.attribution_days * 24 * 60 + 1, len(buyers))
    items = rng.integers(1, 5, len(buyers))
    line_buyer = np.repeat(np.arange(len(buyers)), items)
    line_product = rng.choice(len(prices), size=len(line_buyer), p=popularity)
    # One line per product and order, as a till would print it.
    key = np.unique(line_buyer.astype(np.int64) * len(prices) + line_product)
    line_buyer, line_product = key // len(prices), key % len(prices)
    next_invoice = int(invoice.max()) + 1 if len(invoice) else 500000
    new_invoice = next_invoice + np.argsort(np.argsort(moment, kind="stable"), kind="stable")
    updated = (
        np.concatenate([invoice[keep], new_invoice[line_buyer]]),
        np.concatenate([is_return[keep], np.zeros(len(line_buyer), dtype=bool)]),
        np.concatenate([product[keep], line_product]),
        np.concatenate([quantity[keep], rng.geometric(0.4, len(line_buyer))]),
        np.concatenate([price[keep], prices[line_product]]),
        np.concatenate([seconds[keep], moment[line_buyer]]),
        np.concatenate([customer[keep], buyers[line_buyer]]),
    )
    stamp = offer.decided_at.astimezone(UTC).isoformat()
    ledger = pa.table({
        "customer_id": pa.array(members),
        "offer_id": pa.array([offer.offer_id] * len(members)),
        "pass_id": pa.array([offer.pass_id] * len(members)),
        "group": pa.array(np.where(holdout, HOLDOUT, "treatment").tolist()),
        "decided_at": pa.array([stamp] * len(members)),
    })
    return updated, ledger


def _chronological(seconds: np.ndarray, is_return: np.ndarray, invoice: np.ndarray,
                   product: np.ndarray) -> np.ndarray:
    """Line order by time, purchases before returns, invoice, product: one int64 argsort."""
    span = int(invoice.max() - invoice.min()) + 1
    if span >= 1 << 23:  # too many invoices to pack into one key
        return np.lexsort((product, invoice, is_return, seconds))
    key = (seconds.astype(np.int64) * 2 + is_return) << 33
    key |= (invoice.astype(np.int64) - int(invoice.min())) << 10
    key |= product.astype(np.int64) + 1
    return np.argsort(key, kind="stable")


def _write_csv(table: pa.Table, path: Path) -> None:
    """No quoting (pyarrow refuses a value that would need it), written atomically."""
    partial = path.with_suffix(path.suffix + ".partial")
    with partial.open("wb") as handle:
        handle.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, handle, pacsv.WriteOptions(include_header=False,
                                                          quoting_style="none"))
    partial.replace(path)
