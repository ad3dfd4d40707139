"""The steps of a dashboard date window, timed one by one outside the server:
`python -m bench.window_steps --config config.toml --since 2025-03-01 --until 2025-05-31`.

The same store functions and engine functions the Segments and Products pages call for a
recomputed window (dashboard/frames.py), in their order: the run's rows and the sign-up dates
(cached by a server, so reported apart), the window customers' history (from the columnar copy
when it is complete, else from the store; `--store` forces the store), the window's RFM, clusters
and classes with its customers' KPI figures (one step: engine.window.window_figures), the segment
KPIs grouped from those figures, and its product figures. Wall and CPU seconds per step, the rows
read, and the process's peak memory.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def timed(name: str, compute: Callable[[], T], figures: dict[str, Any]) -> T:
    wall, cpu = time.perf_counter(), time.process_time()
    value = compute()
    figures[name] = {"wall_s": round(time.perf_counter() - wall, 3),
                     "cpu_s": round(time.process_time() - cpu, 3)}
    print(f"{name:18s} {figures[name]['wall_s']:7.2f} s wall {figures[name]['cpu_s']:7.2f} "
          "s CPU", flush=True)
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config.toml"))
    parser.add_argument("--since", type=date.fromisoformat, required=True)
    parser.add_argument("--until", type=date.fromisoformat, required=True)
    parser.add_argument("--store", action="store_true", help="read the store, not the copy")
    args = parser.parse_args(argv)

    from engine.dates import window_end
    from engine.kpis import kpis_of_segments
    from engine.settings import load_settings
    from engine.store import columnar, get_engine, invoice_days, results, runs, sales
    from engine.store.customers import load_customers
    from engine.window import window_figures

    settings = load_settings(args.config)
    engine = get_engine(settings.database_url)
    codes = list(settings.ingest.non_product_codes)
    run = runs.published_run(engine=engine)
    if run is None:
        raise SystemExit("no published run in the store: run `segmint run` first")
    figures: dict[str, Any] = {}
    run_rows = timed("run rows", lambda: results.customer_results(
        engine=engine, run_id=int(run["id"])), figures)
    signups = timed("sign-up dates", lambda: load_customers(engine=engine)[
        ["customer_id", "signup_date"]], figures)
    copy = None if args.store else columnar.current_for(engine, settings)
    print(f"reading {'the columnar copy' if copy else 'the store'}")
    history = timed("history", lambda: columnar.customer_history(
        copy, until=args.until, active_since=args.since) if copy else
        invoice_days.customer_history(engine=engine, until=args.until,
                                      active_since=args.since), figures)
    as_of = window_end(args.until)
    assert as_of is not None
    window = timed("window segments", lambda: window_figures(
        history, signups, run=run, run_rows=run_rows, settings=settings, since=args.since,
        until=args.until, kpis_as_of=as_of), figures)
    rows, customer_kpis = window.rows, window.kpis
    assert customer_kpis is not None, "an empty window"
    timed("segment KPIs", lambda: kpis_of_segments(customer_kpis, rows), figures)
    _, pairs = timed("window products", lambda: sales.window_products(
        engine=engine, non_product_codes=codes, since=args.since, until=args.until,
        copy=copy), figures)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"history rows {len(history):,}; window customers {len(rows):,}; "
          f"customer x product pairs {len(pairs):,}; peak {peak:,} MiB")


if __name__ == "__main__":
    main()
