"""Segmint against the notebook way, on the same data: `python -m bench.run --data PATH --repeat 3`.

Every stage runs in its own fresh child process (bench/child.py), so its peak memory (max RSS) is
its own. Repeats alternate the order of the two sides (notebook first, then Segmint first, ...)
so background load and warm file caches do not favour either. Figures are medians over repeats.

Compared (targets are reported, not asserted):
- run: Segmint's `execute_run` (load lines from SQLite, RFM through written recommendations)
  against the notebook's rfm + kmeans + baskets + recommend + write stages: >= 10x faster and
  <= half the peak memory;
- ingest: Segmint's `ingest_file` into SQLite against pandas `to_sql` of the same raw frame:
  <= 2x the time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import notebook_baseline, segmint_side
from bench.measure import StageResult, median, run_stage

RUN_SPEEDUP_TARGET = 10.0
RUN_MEMORY_TARGET = 0.5
INGEST_RATIO_TARGET = 2.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(),
            "memory_gib": round(memory_gib, 1), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def run_notebook(data: Path, workdir: Path) -> list[StageResult]:
    return [run_stage("notebook", stage, data=data, workdir=workdir)
            for stage in notebook_baseline.STAGES]


def run_segmint(data: Path, workdir: Path, preset: str) -> list[StageResult]:
    options = {"preset": preset}
    return [run_stage("pandas", "to-sql", data=data, workdir=workdir),
            *[run_stage("segmint", stage, data=data, workdir=workdir, options=options)
              for stage in segmint_side.STAGES]]


def summarise(repeats: list[list[StageResult]]) -> dict[str, Any]:
    """Median seconds and peak MiB per stage, plus the run totals and the target ratios."""
    stages: dict[str, dict[str, list[float]]] = {}
    totals: dict[str, dict[str, list[float]]] = {
        "notebook run (rfm..write)": {"seconds": [], "max_rss_mib": []},
        "notebook whole (read..write)": {"seconds": [], "max_rss_mib": []},
    }
    for results in repeats:
        for result in results:
            entry = stages.setdefault(f"{result.side} {result.stage}",
                                      {"seconds": [], "max_rss_mib": []})
            entry["seconds"].append(result.seconds)
            entry["max_rss_mib"].append(result.max_rss_mib)
        notebook = [r for r in results if r.side == "notebook"]
        run_part = [r for r in notebook if r.stage in notebook_baseline.RUN_STAGES]
        for name, part in (("notebook run (rfm..write)", run_part),
                           ("notebook whole (read..write)", notebook)):
            if part:
                totals[name]["seconds"].append(sum(r.seconds for r in part))
                totals[name]["max_rss_mib"].append(max(r.max_rss_mib for r in part))
    rows = {name: {"seconds": median(v["seconds"]), "max_rss_mib": median(v["max_rss_mib"]),
                   "min_seconds": min(v["seconds"], default=float("nan")),
                   "max_seconds": max(v["seconds"], default=float("nan"))}
            for name, v in {**stages, **totals}.items() if v["seconds"]}
    return {"rows": rows, "ratios": ratios(rows)}


def ratios(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    baseline = rows.get("notebook run (rfm..write)")
    whole = rows.get("notebook whole (read..write)")
    ours = rows.get("segmint run")
    if baseline and ours:
        speedup = baseline["seconds"] / ours["seconds"]
        memory = ours["max_rss_mib"] / baseline["max_rss_mib"]
        found["run speed-up (notebook rfm..write / segmint run)"] = {
            "value": speedup, "target": f">= {RUN_SPEEDUP_TARGET:g}x",
            "met": speedup >= RUN_SPEEDUP_TARGET}
        found["run memory (segmint run peak / notebook run peak)"] = {
            "value": memory, "target": f"<= {RUN_MEMORY_TARGET:g}",
            "met": memory <= RUN_MEMORY_TARGET}
    if whole and ours:
        found["speed-up vs the whole notebook (read..write / segmint run)"] = {
            "value": whole["seconds"] / ours["seconds"], "target": "(information)", "met": None}
    ingest, to_sql = rows.get("segmint ingest"), rows.get("pandas to-sql")
    if ingest and to_sql:
        ratio = ingest["seconds"] / to_sql["seconds"]
        found["ingest time (segmint ingest / pandas to_sql)"] = {
            "value": ratio, "target": f"<= {INGEST_RATIO_TARGET:g}x",
            "met": ratio <= INGEST_RATIO_TARGET}
    return found


def format_table(summary: dict[str, Any]) -> str:
    lines = [f"{'stage':34s} {'median s':>10s} {'min s':>9s} {'max s':>9s} {'peak MiB':>10s}"]
    for name, row in summary["rows"].items():
        lines.append(f"{name:34s} {row['seconds']:10.3f} {row['min_seconds']:9.3f} "
                     f"{row['max_seconds']:9.3f} {row['max_rss_mib']:10.0f}")
    lines.append("")
    for name, ratio in summary["ratios"].items():
        verdict = {True: "met", False: "MISSED", None: ""}[ratio["met"]]
        lines.append(f"{name:62s} {ratio['value']:8.2f}  target {ratio['target']:8s} {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="online-retail CSV or CSV.gz")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per side (default 3)")
    parser.add_argument("--preset", default="online-retail", help="Segmint ingest preset")
    parser.add_argument("--workdir", type=Path, help="keep hand-over files and databases here")
    parser.add_argument("--threads", type=int, help="OMP/BLAS threads of every child, both "
                        "sides alike (default: the libraries' own choice); 1 keeps k-means "
                        "timings steady on a machine shared with other work")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    args.data = args.data.resolve()  # the stages run in child processes with their own cwd
    if not args.data.exists():
        parser.error(f"{args.data} does not exist")
    if args.threads:
        for name in THREAD_VARIABLES:
            os.environ[name] = str(args.threads)

    before = machine()
    before["threads"] = args.threads
    print(f"machine: {before['cpu']}, {before['cores']} cores, {before['memory_gib']} GiB, "
          f"Python {before['python']}, load average {before['load_average']}, "
          f"threads {args.threads or 'default'}", flush=True)
    repeats: list[list[StageResult]] = []
    with tempfile.TemporaryDirectory(prefix="segmint-bench-") as scratch:
        workdir = (args.workdir or Path(scratch)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        for repeat in range(args.repeat):
            sides = ["notebook", "segmint"] if repeat % 2 == 0 else ["segmint", "notebook"]
            results: list[StageResult] = []
            for side in sides:
                started = time.perf_counter()
                part = (run_notebook(args.data, workdir) if side == "notebook"
                        else run_segmint(args.data, workdir, args.preset))
                results.extend(part)
                print(f"repeat {repeat + 1}/{args.repeat} {side}: "
                      + ", ".join(f"{r.stage} {r.seconds:.2f}s/{r.max_rss_mib:.0f}MiB"
                                  for r in part)
                      + f" (wall with process start-up {time.perf_counter() - started:.1f}s)",
                      flush=True)
            repeats.append(results)
    summary = summarise(repeats)
    after = machine()
    print()
    print(format_table(summary))
    print(f"\nload average before {before['load_average']}, after {after['load_average']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "data": str(args.data), "repeat": args.repeat, "machine": before,
            "load_average_after": after["load_average"], **summary,
            "raw": [[asdict(r) for r in results] for results in repeats],
        }, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
