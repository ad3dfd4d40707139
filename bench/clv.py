"""CLV cost: fit (BG/NBD + Gamma-Gamma by MAP, pymc-marketing) and scoring time and peak memory
at the real data's ~4,300 customers and at 100,000 and 1,000,000 synthetic customers.

Synthetic summary rows come straight from a seeded BG/NBD + Gamma-Gamma simulation with the
CDNOW parameters (no lines are made). Each size runs in a fresh child process, so its peak
resident set size (ru_maxrss) is its own; the compile cache is warmed first by a small fit.

    .venv/bin/python -m bench.clv --data ../shared/data/online_retail.csv.gz \
        --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
TRUE_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
TRUE_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def simulate_summary(n: int, *, seed: int = 0, max_T: float = 52.0) -> pd.DataFrame:
    """n customers' (frequency, recency, T, monetary_value) from the BG/NBD and Gamma-Gamma
    generative stories, first purchases spread uniformly over max_T weeks."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE_BGNBD["r"], 1 / TRUE_BGNBD["alpha"], n)
    dropout = rng.beta(TRUE_BGNBD["a"], TRUE_BGNBD["b"], n)
    T = np.round(rng.uniform(1.0, max_T, n), 4)
    x = np.zeros(n, dtype=np.int64)
    t_x = np.zeros(n)
    now = np.zeros(n)
    active = np.arange(n)
    while active.size:
        now[active] += rng.exponential(1 / np.maximum(rate[active], 1e-12))
        bought = now[active] <= T[active]
        active = active[bought]
        x[active] += 1
        t_x[active] = now[active]
        active = active[rng.random(active.size) >= dropout[active]]
    nu = rng.gamma(TRUE_GG["q"], 1 / TRUE_GG["v"], n)
    spend = np.where(x > 0, rng.gamma(TRUE_GG["p"] * np.maximum(x, 1), 1 / nu)
                     / np.maximum(x, 1), 0.0)
    return pd.DataFrame({"customer_id": np.arange(n).astype(str), "frequency": x,
                         "recency": np.round(t_x, 4), "T": T, "monetary_value": spend})


def real_summary(path: Path) -> pd.DataFrame:
    """The Online Retail file's customers as of the day after its last line, in weeks."""
    from engine.clv import purchase_summary
    from engine.settings import IngestSettings

    raw = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str},
                      encoding="utf-8")
    lines = pd.DataFrame({
        "invoice": raw["InvoiceNo"], "stock_code": raw["StockCode"],
        "amount": raw["Quantity"] * raw["UnitPrice"],
        "ts": pd.to_datetime(raw["InvoiceDate"]),
        "customer_id": raw["CustomerID"].str.replace(r"\.0$", "", regex=True),
        "is_return": raw["InvoiceNo"].str.startswith("C") | (raw["Quantity"] < 0),
    })
    as_of = lines["ts"].max().date()
    return purchase_summary(lines, as_of=date.fromordinal(as_of.toordinal() + 1),
                            non_product_codes=IngestSettings().non_product_codes)


def child(size: str, data: str | None) -> dict[str, object]:
    from engine.clv import fit_models, score_customers
    from engine.settings import ClvSettings

    summary = real_summary(Path(data)) if size == "real" else simulate_summary(int(size))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    fitted = fit_models(summary, min_repeat_customers=20)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scored = score_customers(summary, fitted.bgnbd, fitted.gamma_gamma, settings=ClvSettings(),
                             population_order_value=fitted.population_order_value)
    score_seconds = time.perf_counter() - started
    return {"size": size, "customers": len(summary),
            "repeat_buyers": int((summary["frequency"] > 0).sum()),
            "fit_s": round(fit_seconds, 2), "score_s": round(score_seconds, 2),
            "rss_before_fit_mib": round(before),
            "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "bgnbd": {k: round(v, 4) for k, v in vars(fitted.bgnbd).items()},
            "gamma_gamma": {k: round(v, 4) for k, v in vars(fitted.gamma_gamma).items()},
            "clv_sum": round(float(scored["clv_365d"].sum()), 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="online_retail.csv.gz (else no real row)")
    parser.add_argument("--sizes", nargs="*", default=["100000", "1000000"])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.data)))
        return
    import pymc_marketing

    sizes = (["real"] if args.data else []) + list(args.sizes)
    print(f"pymc-marketing {pymc_marketing.__version__}; warming the compile cache ...",
          flush=True)
    subprocess.run([sys.executable, "-m", "bench.clv", "--child", "2000"], cwd=REPO, check=True,
                   capture_output=True)
    print("| customers | repeat buyers | fit s | score s | RSS before fit MiB | peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        command = [sys.executable, "-m", "bench.clv", "--child", size]
        if args.data:
            command += ["--data", args.data]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {result['customers']:,} | {result['repeat_buyers']:,} | {result['fit_s']} | "
              f"{result['score_s']} | {result['rss_before_fit_mib']} | {result['peak_mib']} |",
              flush=True)
        print(f"<!-- {json.dumps(result)} -->", flush=True)


if __name__ == "__main__":
    main()
