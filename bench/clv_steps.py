"""Where a run's CLV time goes: each step of `engine.clv.customer_value` timed on a store's lines.

    .venv/bin/python -m bench.clv_steps --database-url sqlite:////path/store.db [--config FILE]

Loads every line as a run does (no window), codes them once, then times, in order: the
pymc-marketing import, the purchase days, the summary, both fits, the scoring, and the
backtest's summary and two fits. CPU seconds (time.process_time) and wall seconds per step;
the CPU figure is the one to compare on a shared machine. Peak RSS (ru_maxrss) at the end.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--config", default="config.toml")
    args = parser.parse_args(argv)

    from engine.clv_cache import use_compile_cache
    from engine.pipeline import RUN_LINE_COLUMNS, window_lines
    from engine.rfm import coded_customer_lines
    from engine.settings import load_settings
    from engine.store import get_engine
    from engine.store.lines_read import load_lines

    settings = load_settings(args.config)
    use_compile_cache(settings.path(settings.clv.compile_dir))
    lines = load_lines(engine=get_engine(args.database_url), until=None,
                       columns=RUN_LINE_COLUMNS)
    history, _window, as_of = window_lines(lines, as_of=None, since=None, until=None)
    assert as_of is not None, "the store has no lines"
    coded = coded_customer_lines(history, list(settings.ingest.non_product_codes))
    rows: list[tuple[str, float, float]] = []

    def step(name: str, work: Callable[[], Any]) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        value = work()
        rows.append((name, time.process_time() - cpu, time.perf_counter() - wall))
        return value

    step("import pymc-marketing", lambda: __import__("pymc_marketing.clv"))
    from engine import clv

    clv_settings = settings.clv
    days = step("purchase days", lambda: clv.purchase_days(history, coded=coded))
    summary = step("summary", lambda: clv.summarize_days(days, as_of=as_of,
                                                        time_unit=clv_settings.time_unit))
    bgnbd = step("fit BG/NBD", lambda: clv.fit_bgnbd(summary))
    gamma_gamma = step("fit Gamma-Gamma", lambda: clv.fit_gamma_gamma(summary))
    step("score", lambda: clv.score_customers(
        summary, bgnbd, gamma_gamma, settings=clv_settings,
        population_order_value=gamma_gamma.population_mean))
    cutoff = as_of - timedelta(days=clv_settings.backtest_days)
    calibration = step("backtest summary", lambda: clv.summarize_days(
        days, as_of=cutoff, time_unit=clv_settings.time_unit))
    step("backtest fit BG/NBD", lambda: clv.fit_bgnbd(calibration))
    step("backtest fit Gamma-Gamma", lambda: clv.fit_gamma_gamma(calibration))

    repeat = int((summary["frequency"] > 0).sum())
    print(f"{len(history):,} lines, {len(days):,} customer-days, {len(summary):,} customers, "
          f"{repeat:,} repeat buyers, as_of {as_of}")
    print("| step | CPU s | wall s |\n|---|---:|---:|")
    for name, cpu, wall in rows:
        print(f"| {name} | {cpu:.2f} | {wall:.2f} |")
    print(f"| total | {sum(r[1] for r in rows):.2f} | {sum(r[2] for r in rows):.2f} |")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
