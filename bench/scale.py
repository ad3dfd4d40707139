"""Segmint at scale on synthetic data: `python -m bench.scale --lines 1000000 10000000`.

For each size, `segmint generate-demo-data` writes a synthetic retailer with about that many
transaction lines (the number of customers is calibrated on a small sample first), then Segmint
ingests it into a fresh SQLite file and runs once, each in its own child process (bench/measure.py),
reporting wall time and peak memory (max RSS). Between sizes it reports how time and memory grow
against the number of lines: a growth exponent near 1 is linear.

Targets (reported, not asserted): the 10-million-line run within 120 s and 8 GiB peak.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measure import REPO, StageFailed, StageResult, median, run_stage
from bench.run import machine

RUN_SECONDS_TARGET = 120.0
RUN_MEMORY_TARGET_MIB = 8 * 1024
TARGET_LINES = 10_000_000
CALIBRATION_CUSTOMERS = 2_000


def generate(outdir: Path, customers: int, seed: int) -> tuple[Path, Path, int]:
    """Run `segmint generate-demo-data`; return (transactions, customers file, data lines)."""
    outdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-m", "segmint", "generate-demo-data", str(outdir),
                    "--customers", str(customers), "--seed", str(seed)],
                   cwd=outdir, env=env, check=True, capture_output=True, text=True)
    transactions = _only(outdir, "transactions")
    with open(transactions, "rb") as handle:
        lines = sum(1 for _ in handle) - 1
    return transactions, _only(outdir, "customers"), lines


def _only(outdir: Path, stem: str) -> Path:
    found = sorted(outdir.glob(f"{stem}.*"))
    if not found:
        raise FileNotFoundError(f"generate-demo-data wrote no {stem} file in {outdir}")
    return found[0]


def growth_exponent(small: float, large: float, small_lines: int, large_lines: int) -> float:
    """b in cost ~ lines**b between two sizes; 1 is linear, 2 quadratic."""
    return math.log(large / small) / math.log(large_lines / small_lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="approximate transaction lines per size (default 1M and 10M)")
    parser.add_argument("--repeat", type=int, default=1, help="ingest + run repeats per size")
    parser.add_argument("--preset", default="generic", help="ingest preset of the demo data")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calibration-customers", type=int, default=CALIBRATION_CUSTOMERS,
                        help="customers of the sample that measures lines per customer")
    parser.add_argument("--workdir", type=Path, help="keep generated data and databases here")
    parser.add_argument("--memory-limit-gib", type=float, default=12.0,
                        help="address-space cap of each child (default 12 GiB; 0 = none)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    limit = int(args.memory_limit_gib * 2**30) or None

    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
          f"Python {info['python']}, load average {info['load_average']}", flush=True)
    sizes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="segmint-scale-") as scratch:
        workdir = (args.workdir or Path(scratch)).resolve()
        _, _, sample_lines = generate(workdir / "calibration", args.calibration_customers,
                                      args.seed)
        lines_per_customer = sample_lines / args.calibration_customers
        print(f"calibration: {lines_per_customer:.1f} lines per customer", flush=True)
        for target in args.lines:
            customers = max(10, round(target / lines_per_customer))
            folder = workdir / f"lines-{target}"
            started = time.perf_counter()
            transactions, customers_file, lines = generate(folder / "data", customers, args.seed)
            generated = time.perf_counter() - started
            print(f"{lines:,} lines for {customers:,} customers generated in {generated:.0f}s",
                  flush=True)
            results: dict[str, list[StageResult]] = {"ingest": [], "run": []}
            failures: dict[str, str] = {}
            options = {"preset": args.preset, "customers": str(customers_file)}
            for repeat in range(args.repeat):
                for stage in results:
                    started = time.perf_counter()
                    try:
                        result = run_stage("segmint", stage, data=transactions, workdir=folder,
                                           options=options, timeout=7200,
                                           memory_limit_bytes=limit)
                    except StageFailed as exc:
                        failures[stage] = (f"{exc} (after {time.perf_counter() - started:.0f}s "
                                           f"with start-up, cap {args.memory_limit_gib:g} GiB)")
                        print(f"  repeat {repeat + 1}: {stage} FAILED: {failures[stage]}",
                              flush=True)
                        break
                    results[stage].append(result)
                    print(f"  repeat {repeat + 1}: {stage} {result.seconds:.1f}s "
                          f"{result.max_rss_mib:.0f} MiB {result.notes}", flush=True)
            sizes.append({"target": target, "lines": lines, "customers": customers,
                          "generate_seconds": generated, "failures": failures, **{
                              stage: {"seconds": median([r.seconds for r in rs]),
                                      "max_rss_mib": median([r.max_rss_mib for r in rs]),
                                      "notes": rs[-1].notes if rs else {}}
                              for stage, rs in results.items()}})
            for leftover in (folder / "data").glob("*"):
                leftover.unlink()
    print()
    print(format_table(sizes))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "sizes": sizes}, indent=2))


def format_table(sizes: list[dict[str, Any]]) -> str:
    out = [f"{'lines':>12s} {'customers':>10s} {'ingest s':>9s} {'ingest MiB':>11s} "
           f"{'run s':>8s} {'run MiB':>8s}"]
    for size in sizes:
        out.append(f"{size['lines']:12,d} {size['customers']:10,d} "
                   f"{size['ingest']['seconds']:9.1f} {size['ingest']['max_rss_mib']:11.0f} "
                   f"{size['run']['seconds']:8.1f} {size['run']['max_rss_mib']:8.0f}")
    for size in sizes:
        for stage, error in size.get("failures", {}).items():
            out.append(f"{size['lines']:,} lines: {stage} failed: {error}")
    sizes = [s for s in sizes if not s.get("failures")]
    for small, large in zip(sizes, sizes[1:], strict=False):
        parts = []
        for stage in ("ingest", "run"):
            for measure, label in (("seconds", "time"), ("max_rss_mib", "memory")):
                exponent = growth_exponent(small[stage][measure], large[stage][measure],
                                           small["lines"], large["lines"])
                parts.append(f"{stage} {label} x{large[stage][measure] / small[stage][measure]:.1f}"
                             f" (exponent {exponent:.2f})")
        out.append(f"growth {small['lines']:,} -> {large['lines']:,} lines "
                   f"(x{large['lines'] / small['lines']:.1f}): " + "; ".join(parts))
    largest = max(sizes, key=lambda size: size["lines"], default=None)
    if largest and largest["lines"] >= 0.9 * TARGET_LINES:
        run = largest["run"]
        fast = "met" if run["seconds"] <= RUN_SECONDS_TARGET else "MISSED"
        small = "met" if run["max_rss_mib"] <= RUN_MEMORY_TARGET_MIB else "MISSED"
        out.append(f"{largest['lines']:,}-line run: {run['seconds']:.1f}s (target <= "
                   f"{RUN_SECONDS_TARGET:.0f}s: {fast}), {run['max_rss_mib'] / 1024:.2f} GiB "
                   f"peak (target <= 8 GiB: {small})")
    return "\n".join(out)


if __name__ == "__main__":
    main()
